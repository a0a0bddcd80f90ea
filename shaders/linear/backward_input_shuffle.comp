#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// backward_input.comp with the vec4 + subgroup-shuffle GEMM core (batch and in % 4 == 0). A = dy is
// read where it lies ([batch][out], out % 4 == 0), or with -DA_M_CONTIGUOUS=1 from dyt, the
// [out][batch] copy the weight gradient makes for other out_features (linear/transpose_dy.comp):
// A is then stored [K][M] and K = out needs no multiple of 4.
// dx[b, i] = sum_o dy[b, o] * weight[o, i]

layout(constant_id = 0) const uint M = 1;  // batch
layout(constant_id = 1) const uint N = 1;  // in_features
layout(constant_id = 2) const uint K = 1;  // out_features

#if A_M_CONTIGUOUS
VEC4_INPUT(0, DYT, dyt);
#define A4(i) LOAD4(dyt, i)
#else
VEC4_INPUT(0, DY, dy);
#define A4(i) LOAD4(dy, i)
#endif
VEC4_INPUT(1, Weight, weight);
layout(set = 0, binding = 2) writeonly buffer DX { vec4 dx[]; };  // N % 4 == 0: whole vec4 rows
VEC4_INPUT(3, X, x);   // this layer's input [M][N]: read by a fused ReLU backward only
layout(set = 0, binding = 4) readonly buffer Partials { vec4 partials[]; };   // dx, read with ACCUMULATE only

#define B_N_CONTIGUOUS 1
#define B4(i) LOAD4(weight, i)
#define DX_EPILOGUE_CONSTANTS 3
#include "../common/dx_epilogue.glsl"
#define STORE(m, n, v) STORE_DX(dx[((m) * N + (n)) / 4][(n) % 4], partials[((m) * N + (n)) / 4][(n) % 4], v, \
                                LOAD4(x, ((m) * N + (n)) / 4)[(n) % 4])
#define STORE4(m, n, v) STORE_DX4(dx[((m) * N + (n)) / 4], partials[((m) * N + (n)) / 4], v, LOAD4(x, ((m) * N + (n)) / 4))
#define GEMM_CONSTANTS 5   // the core's tile constants follow this shader's
#include "../common/gemm_shuffle.glsl"
