#version 450
#extension GL_GOOGLE_include_directive : require
// projected[(b, t), g] = sum_f x[(b, t), f] * weight_ih[g, f] + bias_ih[g]: the input part of every
// gate at every time step in one GEMM (rows: B*T positions, columns: gate rows).

layout(constant_id = 0) const uint M = 1;  // batch * steps
layout(constant_id = 1) const uint N = 1;  // gates * hidden
layout(constant_id = 2) const uint K = 1;  // input features
layout(constant_id = 3) const bool HAS_BIAS = true;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer WeightIH { float weight_ih[]; };
layout(set = 0, binding = 2) readonly buffer BiasIH { float bias_ih[]; };
layout(set = 0, binding = 3) writeonly buffer Projected { float projected[]; };

#define A_AT(m, k) x[(m) * K + (k)]
#define B_AT(k, n) weight_ih[(n) * K + (k)]
#define B_K_CONTIGUOUS
#define STORE(m, n, v) projected[(m) * N + (n)] = (HAS_BIAS ? (v) + bias_ih[n] : (v))
#define GEMM_CONSTANTS 4   // the core's tile constants follow this shader's
#include "../common/gemm.glsl"
