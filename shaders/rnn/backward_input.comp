#version 450
#extension GL_GOOGLE_include_directive : require
// dx[(b, t), f] = sum_g dgates[(b, t), g] * weight_ih[g, f] over the input-side gate columns (the
// first K of each dgates row of SAVED).

layout(constant_id = 0) const uint M = 1;  // batch * steps
layout(constant_id = 1) const uint N = 1;  // input features
layout(constant_id = 2) const uint K = 1;  // gates * hidden
layout(constant_id = 3) const uint SAVED = 1;  // floats per dgates row

layout(set = 0, binding = 0) readonly buffer DGates { float dgates[]; };
layout(set = 0, binding = 1) readonly buffer WeightIH { float weight_ih[]; };
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };

#define A_AT(m, k) dgates[(m) * SAVED + (k)]
#define B_AT(k, n) weight_ih[(k) * N + (n)]
#define STORE(m, n, v) dx[(m) * N + (n)] = (v)
#define GEMM_CONSTANTS 4   // the core's tile constants follow this shader's
#include "../common/gemm.glsl"
