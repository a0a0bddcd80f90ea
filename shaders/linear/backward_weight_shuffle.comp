#version 450
#extension GL_GOOGLE_include_directive : require
// backward_weight.comp with the vec4 + subgroup-shuffle GEMM core (batch, in and out % 4 == 0).
// dweight[o, i] = sum_b dy[b, o] * x[b, i]

layout(constant_id = 0) const uint M = 1;  // out_features
layout(constant_id = 1) const uint N = 1;  // in_features
layout(constant_id = 2) const uint K = 1;  // batch

layout(set = 0, binding = 0) readonly buffer DY { vec4 dy[]; };
layout(set = 0, binding = 1) readonly buffer X { vec4 x[]; };
layout(set = 0, binding = 2) writeonly buffer DWeight { float dweight[]; };

#define A_K_CONTIGUOUS 0
#define B_N_CONTIGUOUS 1
#define A4(i) dy[i]
#define B4(i) x[i]
#define STORE(m, n, v) dweight[(m) * N + (n)] = (v)
#include "../common/gemm_shuffle.glsl"
