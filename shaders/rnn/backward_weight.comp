#version 450
#extension GL_GOOGLE_include_directive : require
// dweight[g, n] = sum over positions (b, t) of dgates[(b, t), column(g)] * x[b, t, n]: the weight is
// shared by every time step, so its gradient sums over time (and the batch). Serves W_ih (x: the
// layer input, X_STRIDE = T * N) and W_hh (x: the states h_0 .. h_{T-1} of a (B, T + 1, H) buffer).
// column(g) skips SKIP columns from SKIP_FROM on (GRU: W_hn pairs with the saved dL/d(W_hn h + b_hn)).

layout(constant_id = 0) const uint M = 1;  // gate rows
layout(constant_id = 1) const uint N = 1;  // features of x
layout(constant_id = 2) const uint K = 1;  // batch * steps
layout(constant_id = 3) const uint STEPS = 1;
layout(constant_id = 4) const uint SAVED = 1;      // floats per dgates row
layout(constant_id = 5) const uint SKIP_FROM = 0;
layout(constant_id = 6) const uint SKIP = 0;
layout(constant_id = 7) const uint X_STRIDE = 1;   // floats per sample of x

layout(set = 0, binding = 0) readonly buffer DGates { float dgates[]; };
layout(set = 0, binding = 1) readonly buffer X { float x[]; };
layout(set = 0, binding = 2) writeonly buffer DWeight { float dweight[]; };

#define A_AT(m, k) dgates[(k) * SAVED + ((m) < SKIP_FROM ? (m) : (m) + SKIP)]
#define A_M_CONTIGUOUS
#define B_AT(k, n) x[((k) / STEPS) * X_STRIDE + ((k) % STEPS) * N + (n)]
#define STORE(m, n, v) dweight[(m) * N + (n)] = (v)
#define GEMM_CONSTANTS 8   // the core's tile constants follow this shader's
#include "../common/gemm.glsl"
