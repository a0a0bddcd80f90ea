#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// backward_weight.comp with the vec4 + subgroup-shuffle GEMM core, reading dy transposed
// (transpose_dy.comp) so that A has k contiguous (batch, in and out % 4 == 0).
// dweight[o, i] = sum_b dyt[o, b] * x[b, i]

layout(constant_id = 0) const uint M = 1;  // out_features
layout(constant_id = 1) const uint N = 1;  // in_features
layout(constant_id = 2) const uint K = 1;  // batch

VEC4_INPUT(0, DYT, dyt);
VEC4_INPUT(1, X, x);
layout(set = 0, binding = 2) writeonly buffer DWeight { vec4 dweight[]; };  // N % 4 == 0: whole vec4 rows

#define B_N_CONTIGUOUS 1
#define A4(i) LOAD4(dyt, i)
#define B4(i) LOAD4(x, i)
#define STORE(m, n, v) dweight[((m) * N + (n)) / 4][(n) % 4] = (v)
#define STORE4(m, n, v) dweight[((m) * N + (n)) / 4] = (v)
#include "../common/gemm_shuffle.glsl"
