#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// backward_weight.comp with the vec4 + subgroup-shuffle GEMM core (batch and in % 4 == 0). A = dy^T
// is read where dy lies ([batch][out]: -DA_M_CONTIGUOUS=1, out % 4 == 0), else from dyt, its
// [out][batch] copy (linear/transpose_dy.comp). With HAS_BIAS the first column of workgroups also
// sums dbias[o] = sum_b dy[b, o], over b = 0, 1, ... like backward_bias.comp.
// With -DGRAD_SQUARES=1 every invocation also stores the sums of the squares of the dweight and
// dbias values it stored, one float each in dweight_squares and dbias_squares (one per invocation
// of the grid): plan.py sums those for the gradient norm instead of reading the gradients again.
// dweight[o, i] = sum_b dy[b, o] * x[b, i]

layout(constant_id = 0) const uint M = 1;  // out_features
layout(constant_id = 1) const uint N = 1;  // in_features
layout(constant_id = 2) const uint K = 1;  // batch
layout(constant_id = 3) const bool HAS_BIAS = true;

#if A_M_CONTIGUOUS
VEC4_INPUT(0, DY, dy);
#define A4(i) LOAD4(dy, i)
#else
VEC4_INPUT(0, DYT, dyt);
#define A4(i) LOAD4(dyt, i)
#endif
VEC4_INPUT(1, X, x);
layout(set = 0, binding = 2) writeonly buffer DWeight { vec4 dweight[]; };  // N % 4 == 0: whole vec4 rows
layout(set = 0, binding = 3) writeonly buffer DBias { float dbias[]; };

#define B_N_CONTIGUOUS 1
#define B4(i) LOAD4(x, i)
#define STORE(m, n, v) dweight[((m) * N + (n)) / 4][(n) % 4] = (v)
#define STORE4(m, n, v) dweight[((m) * N + (n)) / 4] = (v)
#define ROW_SUMS HAS_BIAS
#define STORE_ROW_SUM(m, v) dbias[m] = (v)
#ifndef GRAD_SQUARES
#define GRAD_SQUARES 0
#endif
#if GRAD_SQUARES
layout(set = 0, binding = 4) writeonly buffer DWeightSquares { float dweight_squares[]; };
layout(set = 0, binding = 5) writeonly buffer DBiasSquares { float dbias_squares[]; };
#define STORE_SQUARES(i, c, r)            \
    {                                     \
        dweight_squares[i] = (c);         \
        if (HAS_BIAS) dbias_squares[i] = (r); \
    }
#endif
#define GEMM_CONSTANTS 4   // the core's tile constants follow this shader's
#include "../common/gemm_shuffle.glsl"
