#version 450
#extension GL_GOOGLE_include_directive : require
// dweight[o, i] = sum_b dy[b, o] * x[b, i]     (the sum over the batch is the weight sharing)

layout(constant_id = 0) const uint M = 1;  // out_features
layout(constant_id = 1) const uint N = 1;  // in_features
layout(constant_id = 2) const uint K = 1;  // batch

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) readonly buffer X { float x[]; };
layout(set = 0, binding = 2) writeonly buffer DWeight { float dweight[]; };

#define A_AT(m, k) dy[(k) * M + (m)]
#define A_M_CONTIGUOUS
#define B_AT(k, n) x[(k) * N + (n)]
#define STORE(m, n, v) dweight[(m) * N + (n)] = (v)
#define GEMM_CONSTANTS 3   // the core's tile constants follow this shader's
#include "../common/gemm.glsl"
