#version 450
#extension GL_GOOGLE_include_directive : require
// y[b, o] = sum_i x[b, i] * weight[o, i] + bias[o]      (PyTorch layout: weight is (out, in))

layout(constant_id = 0) const uint M = 1;  // batch
layout(constant_id = 1) const uint N = 1;  // out_features
layout(constant_id = 2) const uint K = 1;  // in_features
layout(constant_id = 3) const bool HAS_BIAS = true;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(set = 0, binding = 3) writeonly buffer Y { float y[]; };

#define A_AT(m, k) x[(m) * K + (k)]
#define B_AT(k, n) weight[(n) * K + (k)]
#define B_K_CONTIGUOUS
#include "epilogue.glsl"
#define STORE(m, n, v) y[(m) * N + (n)] = activate(HAS_BIAS ? (v) + bias[n] : (v))
#define GEMM_CONSTANTS 5   // the core's tile constants follow this shader's
#include "../common/gemm.glsl"
