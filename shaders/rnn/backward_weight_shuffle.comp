#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// backward_weight.comp on the vec4 + subgroup-shuffle GEMM core (common/gemm_shuffle.glsl), where
// vkbackprop/layers/recurrent.py finds it applies: gate rows, dgates rows, the skip, features and
// X_STRIDE in whole quads. A = dgates^T is read where dgates lies ([K][SAVED]).
// dweight[g, n] = sum over positions k = (b, t) of dgates[k, column(g)] * x[b, t, n], k in order (the
// K % 4 tail one k at a time). Serves W_ih (x: the layer input, X_STRIDE = T * N) and W_hh (x: the
// states h_0 .. h_{T-1} of a (B, T + 1, H) buffer). column(g) skips SKIP columns from SKIP_FROM on
// (GRU: W_hn pairs with the saved dL/d(W_hn h + b_hn)).

layout(constant_id = 0) const uint M = 1;  // gate rows
layout(constant_id = 1) const uint N = 1;  // features of x
layout(constant_id = 2) const uint K = 1;  // batch * steps
layout(constant_id = 3) const uint STEPS = 1;
layout(constant_id = 4) const uint X_STRIDE = 1;   // floats per sample of x
layout(constant_id = 5) const uint SAVED = 1;      // floats per dgates row
layout(constant_id = 6) const uint SKIP_FROM = 0;
layout(constant_id = 7) const uint SKIP = 0;

VEC4_INPUT(0, DGates, dgates);
VEC4_INPUT(1, X, x);
layout(set = 0, binding = 2) writeonly buffer DWeight { vec4 dweight[]; };   // N % 4 == 0: whole quads

#ifndef A_M_CONTIGUOUS
#define A_M_CONTIGUOUS 1   // always: A = dgates^T is stored [K][M] (recurrent.py also says so, for the tile checks)
#endif
// dgates rows m0 .. m0 + 3 (gate rows; SKIP_FROM % 4 == 0, so a quad skips all or none) at position k.
#define A_ROWS4(k, m0) LOAD4(dgates, ((k) * SAVED + ((m0) < SKIP_FROM ? (m0) : (m0) + SKIP)) / 4)
#define B_N_CONTIGUOUS 1
// x at position k = (b, t), features n0 .. n0 + 3.
#define B_ROW4(k, n0) LOAD4(x, (((k) / STEPS) * X_STRIDE + ((k) % STEPS) * N + (n0)) / 4)
#define STORE(m, n, v) dweight[((m) * N + (n)) / 4][(n) % 4] = (v)
#define STORE4(m, n, v) dweight[((m) * N + (n)) / 4] = (v)
#define GEMM_CONSTANTS 8   // the core's tile constants follow this shader's
#include "../common/gemm_shuffle.glsl"
