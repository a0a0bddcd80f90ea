// C[M, N] = A[M, K] * B[K, N] with vec4 loads and A shared across the subgroup by subgroupShuffle.
//
// Why: on lavapipe (llvmpipe) every storage-buffer load instruction costs a per-lane loop, so the
// scalar core (gemm.glsl) is bound by loads: each lane reloads the A values all its neighbours
// also load. Here each lane loads a *different* slice of A (one vec4 per SHARE rows) and gets the
// others' from registers with subgroupShuffle, and B comes as vec4. Measured on 2-core lavapipe:
// ~45 GFLOP/s at 1024^3 against ~3 for the scalar core (docs/benchmarks.md).
//
// Each invocation computes TM rows x 4 columns (one vec4 of accumulators per row). SHARE lanes
// hold the A rows of a tile: correct for any subgroup size >= SHARE (lanes beyond SHARE load
// clamped duplicates); with a smaller subgroup every lane loads its own A values instead.
//
// The includer declares spec constants M, N, K, the vec4 views A4(i) and B4(i) (the i-th vec4 of
// the A and B buffers) and STORE(m, n, v); and defines A_K_CONTIGUOUS (1: A is stored [M][K], 0:
// [K][M]) and B_N_CONTIGUOUS (1: B is stored [K][N], 0: [N][K]). Requirements, checked in Python
// (vkbackprop/layers/gemm.py): K % 4 == 0; M % 4 == 0 when A is [K][M]; N % 4 == 0 when B is [K][N].
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require

#if !defined(TM) || !defined(WG_X) || !defined(SHARE) || !defined(A_K_CONTIGUOUS) || !defined(B_N_CONTIGUOUS)
#error "compile with -DTM -DWG_X -DSHARE -DA_K_CONTIGUOUS -DB_N_CONTIGUOUS (see vkbackprop/layers/gemm.py)"
#endif
#if TM % SHARE != 0 || (A_K_CONTIGUOUS == 0 && (SHARE % 4 != 0 || TM % 4 != 0))
#error "TM must be a multiple of SHARE (and both of 4 when A is [K][M])"
#endif
layout(local_size_x = WG_X, local_size_y = 1, local_size_z = 1) in;

// B[4k4 + q][n0 .. n0 + 3] for q = 0..3. Columns past N repeat the last one (never stored).
void load_b(const uint k4, const uint n0, out vec4 bq[4]) {
#if B_N_CONTIGUOUS
    for (uint q = 0; q < 4; ++q) bq[q] = B4(((k4 * 4 + q) * N + n0) / 4);
#else
    vec4 rows[4];   // B[n0 + j][4k4 .. 4k4 + 3], then a 4x4 transpose in registers
    for (uint j = 0; j < 4; ++j) rows[j] = B4((min(n0 + j, N - 1) * K) / 4 + k4);
    for (uint q = 0; q < 4; ++q) bq[q] = vec4(rows[0][q], rows[1][q], rows[2][q], rows[3][q]);
#endif
}

void main() {
    const uint n0 = min(gl_GlobalInvocationID.x * 4, ((N + 3) / 4 - 1) * 4);  // clamped: every lane runs
    const uint m0 = gl_WorkGroupID.y * TM;
    const uint lane = gl_SubgroupInvocationID;
    const bool shared_a = gl_SubgroupSize >= SHARE;   // uniform: the whole subgroup takes one path

    vec4 acc[TM];
    for (uint i = 0; i < TM; ++i) acc[i] = vec4(0.0);

    for (uint k4 = 0; k4 < K / 4; ++k4) {
        vec4 bq[4];
        load_b(k4, n0, bq);
#if A_K_CONTIGUOUS
        // Lane l holds A[row][4k4 .. 4k4 + 3] for rows m0 + s*SHARE + l, s < TM/SHARE.
        vec4 held[TM / SHARE];
        for (uint s = 0; s < TM / SHARE; ++s)
            held[s] = A4((min(m0 + s * SHARE + lane % SHARE, M - 1) * K) / 4 + k4);
        for (uint i = 0; i < TM; ++i) {
            const vec4 a = shared_a ? subgroupShuffle(held[i / SHARE], i % SHARE)
                                    : A4((min(m0 + i, M - 1) * K) / 4 + k4);
            for (uint q = 0; q < 4; ++q) acc[i] = fma(vec4(a[q]), bq[q], acc[i]);
        }
#else
        // Slot t = s*SHARE + l holds A[4k4 + t%4][4 rows from m0 + 4*(t/4)] (A stored [K][M]).
        vec4 held[TM / SHARE];
        for (uint s = 0; s < TM / SHARE; ++s) {
            const uint t = s * SHARE + lane % SHARE;
            held[s] = A4(((k4 * 4 + t % 4) * M + min(m0 + 4 * (t / 4), M - 4)) / 4);
        }
        for (uint t = 0; t < TM; ++t) {
            const vec4 a = shared_a ? subgroupShuffle(held[t / SHARE], t % SHARE)
                                    : A4(((k4 * 4 + t % 4) * M + min(m0 + 4 * (t / 4), M - 4)) / 4);
            for (uint r = 0; r < 4; ++r) acc[4 * (t / 4) + r] = fma(vec4(a[r]), bq[t % 4], acc[4 * (t / 4) + r]);
        }
#endif
    }

    const uint n_start = gl_GlobalInvocationID.x * 4;
    for (uint i = 0; i < TM; ++i) {
        const uint m = m0 + i;
        if (m >= M) break;
        for (uint j = 0; j < 4; ++j)
            if (n_start + j < N) STORE(m, n_start + j, acc[i][j]);
    }
}
