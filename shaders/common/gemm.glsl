// C[M, N] = A[M, K] * B[K, N], one register-blocked GEMM core shared by every layer.
//
// The including shader declares spec constants M, N, K and the macros
//   A_AT(m, k)        element (m, k) of A (any layout: transposes are just index order)
//   B_AT(k, n)        element (k, n) of B
//   STORE(m, n, v)    epilogue writing the finished C[m][n] (bias add, accumulate, ...)
// Each invocation computes a TM x TN block; the 16 x 4 invocations of a workgroup cover
// 16*TN columns and 4*TM rows. Neighbouring invocations in x take neighbouring columns, and all
// invocations of a row share their A values, which suits both SIMD-on-CPU (lavapipe) and GPUs.
// No shared memory and no subgroup operations: nothing here assumes a subgroup size.

#define TM 4
#define TN 4
#define WG_X 16
#define WG_Y 4
layout(local_size_x = WG_X, local_size_y = WG_Y, local_size_z = 1) in;

void main() {
    const uint n0 = gl_WorkGroupID.x * (WG_X * TN) + gl_LocalInvocationID.x;
    const uint m0 = gl_WorkGroupID.y * (WG_Y * TM) + gl_LocalInvocationID.y * TM;

    // Out-of-range rows/columns load a valid clamped element and are never stored.
    uint rows[TM];
    uint cols[TN];
    for (uint i = 0; i < TM; ++i) rows[i] = min(m0 + i, M - 1);
    for (uint j = 0; j < TN; ++j) cols[j] = min(n0 + j * WG_X, N - 1);

    float acc[TM][TN];
    for (uint i = 0; i < TM; ++i)
        for (uint j = 0; j < TN; ++j) acc[i][j] = 0.0;

    for (uint k = 0; k < K; ++k) {
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
