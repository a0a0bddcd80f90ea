// C[M, N] = A[M, K] * B[K, N], one register-blocked GEMM core shared by every layer.
//
// The including shader declares spec constants M, N, K and the macros
//   A_AT(m, k)        element (m, k) of A (any layout: transposes are just index order)
//   B_AT(k, n)        element (k, n) of B
//   STORE(m, n, v)    epilogue writing the finished C[m][n] (bias add, accumulate, ...)
// and optionally
//   B_COLUMN_T, B_COLUMN(n)  what B_AT gets as its column: by default the index n (a uint); an includer
//                     whose B is gathered (implicit GEMM) precomputes the column's decomposition once
//   K_FIRST, K_LAST   the slice [K_FIRST, K_LAST) of the reduction to sum (split-K; default [0, K))
//   A_M_CONTIGUOUS, B_K_CONTIGUOUS  A stored [k][m], B stored [n][k]: hints for the shared-memory
//                     core's copies (common/gemm_tiled.glsl)
// Each invocation computes a TM x TN block; the WG_X x WG_Y invocations of a workgroup cover
// WG_X*TN columns and WG_Y*TM rows. Neighbouring invocations in x take neighbouring columns, and all
// invocations of a row share their A values, which suits both SIMD-on-CPU (lavapipe) and GPUs.
// This core uses no shared memory (-DSHARED_MEMORY=1 selects common/gemm_tiled.glsl, which does)
// and no subgroup operations: nothing here assumes a subgroup size.
//
// The tile is specialization constants, set from Python (vkbackprop/layers/gemm.py, which also
// checks a tile's constraints): one SPIR-V per shader serves every tile. The includer numbers them
// after its own constants with GEMM_CONSTANTS, the first free constant_id.
#ifndef GEMM_CONSTANTS
#error "define GEMM_CONSTANTS, the first constant_id after the includer's own, before including gemm.glsl"
#endif
layout(constant_id = GEMM_CONSTANTS) const uint TM = 1;      // rows per invocation
layout(constant_id = GEMM_CONSTANTS + 1) const uint TN = 1;  // columns per invocation
layout(local_size_x_id = GEMM_CONSTANTS + 2, local_size_y_id = GEMM_CONSTANTS + 3) in;
#define WG_X gl_WorkGroupSize.x
#define WG_Y gl_WorkGroupSize.y

#ifndef B_COLUMN
#define B_COLUMN_T uint
#define B_COLUMN(n) (n)
#endif
#ifndef K_FIRST
#define K_FIRST 0
#define K_LAST K
#endif

#if SHARED_MEMORY
#include "gemm_tiled.glsl"
#else
void main() {
    const uint n0 = gl_WorkGroupID.x * (WG_X * TN) + gl_LocalInvocationID.x;
    const uint m0 = gl_WorkGroupID.y * (WG_Y * TM) + gl_LocalInvocationID.y * TM;

    // Out-of-range rows/columns load a valid clamped element and are never stored.
    uint rows[TM];
    B_COLUMN_T cols[TN];
    for (uint i = 0; i < TM; ++i) rows[i] = min(m0 + i, M - 1);
    for (uint j = 0; j < TN; ++j) cols[j] = B_COLUMN(min(n0 + j * WG_X, N - 1));

    float acc[TM][TN];
    for (uint i = 0; i < TM; ++i)
        for (uint j = 0; j < TN; ++j) acc[i][j] = 0.0;

    for (uint k = K_FIRST; k < K_LAST; ++k) {
        float a[TM];
        float b[TN];
        for (uint i = 0; i < TM; ++i) a[i] = A_AT(rows[i], k);
        for (uint j = 0; j < TN; ++j) b[j] = B_AT(k, cols[j]);
        for (uint i = 0; i < TM; ++i)
            for (uint j = 0; j < TN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }

    for (uint i = 0; i < TM; ++i) {
        const uint m = m0 + i;
        if (m >= M) break;
        for (uint j = 0; j < TN; ++j) {
            const uint n = n0 + j * WG_X;
            if (n < N) STORE(m, n, acc[i][j]);
        }
    }
}
#endif
