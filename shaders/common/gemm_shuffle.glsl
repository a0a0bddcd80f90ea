// C[M, N] = A[M, K] * B[K, N] with vec4 loads and A shared across the subgroup by subgroupShuffle.
//
// Why: on lavapipe (llvmpipe) every storage-buffer load instruction costs a per-lane loop, so the
// scalar core (gemm.glsl) is bound by loads: each lane reloads the A values all its neighbours
// also load. Here each lane loads a *different* slice of A (one vec4 per SHARE rows) and gets the
// others' from registers with subgroupShuffle, and B comes as vec4. Measured on 2-core lavapipe:
// 25-40 GFLOP/s at 1024^3 against ~3 for the scalar core (docs/benchmarks.md).
//
// Each invocation computes TM rows x 4 NC columns (NC vec4 accumulators per row: each loaded A
// value feeds 4 NC columns). SHARE lanes hold the A rows of a tile: correct for any subgroup size
// >= SHARE (lanes beyond SHARE load clamped duplicates); with a smaller subgroup every lane loads
// its own A values instead.
//
// A is stored [M][K] (k contiguous; a layer with A = X^T copies it first: linear/transpose_dy.comp).
// The includer declares spec constants M, N, K, the vec4 views A4(i) and B4(i) (the i-th vec4 of
// the A and B buffers) and STORE(m, n, v), optionally STORE4(m, n, v) storing C[m][n .. n + 3]
// at once (used where all four columns exist); and defines B_N_CONTIGUOUS (1: B is stored
// [K][N], 0: [N][K]). Requirements, checked in Python (vkbackprop/layers/gemm_shuffle.py):
// K % 4 == 0; N % 4 == 0 when B is [K][N].
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_control_flow_attributes : require

#if !defined(TM) || !defined(NC) || !defined(WG_X) || !defined(SHARE) || !defined(B_N_CONTIGUOUS)
#error "compile with -DTM -DNC -DWG_X -DSHARE -DB_N_CONTIGUOUS (see vkbackprop/layers/gemm_shuffle.py)"
#endif
#if TM % SHARE != 0
#error "TM must be a multiple of SHARE"
#endif
layout(local_size_x = WG_X, local_size_y = 1, local_size_z = 1) in;

// B[4k4 + q][n0 .. n0 + 3] for q = 0..3. Columns past N repeat the last one (never stored).
void load_b(const uint k4, uint n0, out vec4 bq[4]) {
    n0 = min(n0, ((N + 3) / 4 - 1) * 4);   // clamped: every lane runs the whole loop
#if B_N_CONTIGUOUS
    [[unroll]] for (uint q = 0; q < 4; ++q) bq[q] = B4(((k4 * 4 + q) * N + n0) / 4);
#else
    vec4 rows[4];   // B[n0 + j][4k4 .. 4k4 + 3], then a 4x4 transpose in registers
    [[unroll]] for (uint j = 0; j < 4; ++j) rows[j] = B4((min(n0 + j, N - 1) * K) / 4 + k4);
    [[unroll]] for (uint q = 0; q < 4; ++q) bq[q] = vec4(rows[0][q], rows[1][q], rows[2][q], rows[3][q]);
#endif
}

// acc += A[m0 .. m0 + TM - 1][:] B[:][this lane's columns]. With shared_a, SHARE lanes load a tile's
// A rows (lane l holds A[row][4k4 .. 4k4 + 3] for rows m0 + s*SHARE + l) and every lane takes them
// with subgroupShuffle; without, every lane loads all TM rows itself. main() calls it with a constant
// shared_a in each branch, so each inlined copy has one kind of A access: a runtime select inside the
// loop cost ~12% on lavapipe, which runs the masked-off loads as well.
void multiply(const bool shared_a, const uint n_start, const uint m0, inout vec4 acc[TM][NC]) {
    const uint lane = gl_SubgroupInvocationID;
    for (uint k4 = 0; k4 < K / 4; ++k4) {
        vec4 bq[NC][4];
        [[unroll]] for (uint c = 0; c < NC; ++c) load_b(k4, n_start + 4 * c, bq[c]);
        vec4 held[TM / SHARE];
        if (shared_a)
            [[unroll]] for (uint s = 0; s < TM / SHARE; ++s)
                held[s] = A4((min(m0 + s * SHARE + lane % SHARE, M - 1) * K) / 4 + k4);
        [[unroll]] for (uint i = 0; i < TM; ++i) {
            const vec4 a = shared_a ? subgroupShuffle(held[i / SHARE], i % SHARE)
                                    : A4((min(m0 + i, M - 1) * K) / 4 + k4);
            [[unroll]] for (uint c = 0; c < NC; ++c)
                [[unroll]] for (uint q = 0; q < 4; ++q) acc[i][c] = fma(vec4(a[q]), bq[c][q], acc[i][c]);
        }
    }
}

void main() {
    const uint n_start = gl_GlobalInvocationID.x * 4 * NC;   // this lane's columns: n_start .. + 4 NC - 1
    const uint m0 = gl_WorkGroupID.y * TM;

    vec4 acc[TM][NC];
    [[unroll]] for (uint i = 0; i < TM; ++i)
        [[unroll]] for (uint c = 0; c < NC; ++c) acc[i][c] = vec4(0.0);
    if (gl_SubgroupSize >= SHARE)   // uniform: the whole subgroup takes one branch
        multiply(true, n_start, m0, acc);
    else
        multiply(false, n_start, m0, acc);

    [[unroll]] for (uint i = 0; i < TM; ++i) {
        const uint m = m0 + i;
        if (m >= M) break;
        [[unroll]] for (uint c = 0; c < NC; ++c) {
            const uint n = n_start + 4 * c;
#ifdef STORE4
            // One vec4 store instead of four: on lavapipe each store instruction loops over the lanes.
            if (n + 3 < N) {
                STORE4(m, n, acc[i][c]);
                continue;
            }
#endif
            for (uint j = 0; j < 4; ++j)
                if (n + j < N) STORE(m, n + j, acc[i][c][j]);
        }
    }
}
