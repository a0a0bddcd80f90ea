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
// The includer declares spec constants M, N, K, the vec4 views A4(i) and B4(i) (the i-th vec4 of
// the A and B buffers) and STORE(m, n, v), optionally STORE4(m, n, v) storing C[m][n .. n + 3]
// at once (used where all four columns exist); and defines B_N_CONTIGUOUS (1: B is stored
// [K][N], 0: [N][K]). A is stored [M][K] (k contiguous), or [K][M] with A_M_CONTIGUOUS 1 (e.g.
// A = dy^T read where dy lies). Optionally ROW_SUMS (a bool) and STORE_ROW_SUM(m, v): the first
// column of workgroups also stores each row's sum of A over k = 0, 1, ... in order (a bias
// gradient). Optionally STORE_SQUARES(i, c, r): invocation i of the flattened grid ((workgroup y *
// workgroups x + workgroup x) * WG_X + lane) stores the sum of the squares of the C values it stored
// (c) and of the row sums it stored (r; 0 outside the first column): partial sums of a gradient's
// squared norm, so nothing has to read the gradient again for it. Requirements, checked in Python
// (vkbackprop/layers/gemm_shuffle.py): K % 4 == 0, except with A [K][M] and B [K][N]; N % 4 == 0
// when B is [K][N]; M % 4 == 0 and SHARE % 4 == 0 when A is [K][M]; TM a multiple of SHARE.
//
// An includer whose A or B is no plain matrix (an implicit GEMM gathering its B from an image) may
// define the quads the core reads instead of A4 / B4:
//   A_QUAD(m, k4)     A[m][4k4 .. 4k4 + 3] (A stored [M][K] only)
//   A_ROWS4(k, m0)    A[m0 .. m0 + 3][k], m0 % 4 == 0 (A stored [K][M] only, A_M_CONTIGUOUS 1)
//   B_ROW4(k, n0)     B[k][n0 .. n0 + 3], n0 % 4 == 0 (B_N_CONTIGUOUS 1)
//   B_COLUMN4(n, k4)  B[4k4 .. 4k4 + 3][n] (B_N_CONTIGUOUS 0)
//   K4_FIRST, K4_LAST the quads [K4_FIRST, K4_LAST) of the reduction to sum (split-K; default all
//                     K / 4; the row sums always cover [0, K)). A range past K / 4 (a reduction
//                     of no whole quads run to the next quad) needs quads that are 0 past K.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_control_flow_attributes : require

// The tile is specialization constants, set (and its constraints checked) in Python
// (vkbackprop/layers/gemm_shuffle.py): one SPIR-V per shader variant serves every tile. The includer
// numbers them after its own constants with GEMM_CONSTANTS, the first free constant_id.
#if !defined(GEMM_CONSTANTS) || !defined(B_N_CONTIGUOUS)
#error "define GEMM_CONSTANTS (the first constant_id after the includer's own) and B_N_CONTIGUOUS"
#endif
layout(constant_id = GEMM_CONSTANTS) const uint TM = 1;      // rows per invocation
layout(constant_id = GEMM_CONSTANTS + 1) const uint NC = 1;  // column quads per invocation
layout(constant_id = GEMM_CONSTANTS + 2) const uint SHARE = 1;   // lanes holding a tile's A rows
layout(local_size_x_id = GEMM_CONSTANTS + 3) in;
#define WG_X gl_WorkGroupSize.x
#ifndef A_M_CONTIGUOUS
#define A_M_CONTIGUOUS 0
#endif
#ifndef A_QUAD
#define A_QUAD(m, k4) A4(((m) * K) / 4 + (k4))
#endif
#ifndef A_ROWS4
#define A_ROWS4(k, m0) A4(((k) * M + (m0)) / 4)
#endif
#ifndef B_ROW4
#define B_ROW4(k, n0) B4(((k) * N + (n0)) / 4)
#endif
#ifndef B_COLUMN4
#define B_COLUMN4(n, k4) B4(((n) * K) / 4 + (k4))
#endif
#ifndef K4_FIRST
#define K4_FIRST 0
#define K4_LAST (K / 4)
#endif

// A lane's first column n0, clamped to the last quad: every lane runs the whole loop, and columns
// past N repeat the last one (never stored).
uint clamped_column(const uint n0) { return min(n0, ((N + 3) / 4 - 1) * 4); }

// B[4k4 + q][n0 .. n0 + 3] for q = 0..3.
void load_b(const uint k4, uint n0, out vec4 bq[4]) {
    n0 = clamped_column(n0);
#if B_N_CONTIGUOUS
    [[unroll]] for (uint q = 0; q < 4; ++q) bq[q] = B_ROW4(k4 * 4 + q, n0);
#else
    vec4 rows[4];   // B[n0 + j][4k4 .. 4k4 + 3], then a 4x4 transpose in registers
    [[unroll]] for (uint j = 0; j < 4; ++j) rows[j] = B_COLUMN4(min(n0 + j, N - 1), k4);
    [[unroll]] for (uint q = 0; q < 4; ++q) bq[q] = vec4(rows[0][q], rows[1][q], rows[2][q], rows[3][q]);
#endif
}

// A[m][4k4 .. 4k4 + 3], loaded by this lane alone.
vec4 load_a_row(const uint m, const uint k4) {
#if A_M_CONTIGUOUS
    vec4 a;
    [[unroll]] for (uint q = 0; q < 4; ++q) a[q] = A_ROWS4(k4 * 4 + q, m - m % 4)[m % 4];
    return a;
#else
    return A_QUAD(m, k4);
#endif
}

// The quad of A a sharing lane loads for rows m0 + s SHARE ..: [K][M]-stored A gives 4 rows at one
// k (lane l: rows + 4 (l / 4) .. + 3 at k = 4k4 + l % 4), [M][K]-stored A one row at 4 k (row + l).
vec4 load_a_shared(const uint rows, const uint k4, const uint lane) {
#if A_M_CONTIGUOUS
    return A_ROWS4(k4 * 4 + lane % 4, min(rows + 4 * (lane / 4), M - 4));
#else
    return A_QUAD(min(rows + lane, M - 1), k4);
#endif
}

// The A quads this lane holds for the sharing lanes, one per SHARE rows of the tile. A global, not
// a parameter: glslang gives each TM / SHARE its own array type and copies an argument of that
// size element by element as if the constants had their defaults (one element).
vec4 held[TM / SHARE];

// Row i of the tile (A[m0 + i][4k4 .. 4k4 + 3]) from the sharing lanes' quads.
vec4 shared_row(const uint i) {
#if A_M_CONTIGUOUS
    vec4 a;
    [[unroll]] for (uint q = 0; q < 4; ++q)
        a[q] = subgroupShuffle(held[i / SHARE][i % 4], (i % SHARE) / 4 * 4 + q);   // lane holding k = 4k4 + q
    return a;
#else
    return subgroupShuffle(held[i / SHARE], i % SHARE);
#endif
}

// acc += A[m0 .. m0 + TM - 1][:] B[:][this lane's columns]. With shared_a, SHARE lanes load a tile's
// A quads (load_a_shared) and every lane takes them with subgroupShuffle (shared_row); without,
// every lane loads all TM rows itself. main() calls it with a constant
// shared_a in each branch, so each inlined copy has one kind of A access: a runtime select inside the
// loop cost ~12% on lavapipe, which runs the masked-off loads as well.
void multiply(const bool shared_a, const uint n_start, const uint m0, inout vec4 acc[TM][NC]) {
    const uint lane = gl_SubgroupInvocationID;
    for (uint k4 = K4_FIRST; k4 < K4_LAST; ++k4) {
        vec4 bq[NC][4];
        [[unroll]] for (uint c = 0; c < NC; ++c) load_b(k4, n_start + 4 * c, bq[c]);
        if (shared_a)
            [[unroll]] for (uint s = 0; s < TM / SHARE; ++s)
                held[s] = load_a_shared(m0 + s * SHARE, k4, lane % SHARE);
        [[unroll]] for (uint i = 0; i < TM; ++i) {
            const vec4 a = shared_a ? shared_row(i) : load_a_row(min(m0 + i, M - 1), k4);
            [[unroll]] for (uint c = 0; c < NC; ++c)
                [[unroll]] for (uint q = 0; q < 4; ++q) acc[i][c] = fma(vec4(a[q]), bq[c][q], acc[i][c]);
        }
    }
}

#if A_M_CONTIGUOUS && B_N_CONTIGUOUS
// The last K % 4 steps, one k at a time: with A stored [K][M] and B [K][N] every k's row starts a
// quad, so K needs no multiple of 4 (e.g. dx = dy W over a handful of outputs, A = dy^T).
void multiply_k_tail(const uint n_start, const uint m0, inout vec4 acc[TM][NC]) {
    for (uint k = K / 4 * 4; k < K; ++k) {
        vec4 b[NC];
        [[unroll]] for (uint c = 0; c < NC; ++c) b[c] = B_ROW4(k, clamped_column(n_start + 4 * c));
        [[unroll]] for (uint r4 = 0; r4 < TM / 4; ++r4) {
            const vec4 a = A_ROWS4(k, min(m0 + 4 * r4, M - 4));   // rows m0 + 4 r4 .. + 3 at k
            [[unroll]] for (uint r = 0; r < 4; ++r)
                [[unroll]] for (uint c = 0; c < NC; ++c)
                    acc[4 * r4 + r][c] = fma(vec4(a[r]), b[c], acc[4 * r4 + r][c]);
        }
    }
}
#endif

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
#if A_M_CONTIGUOUS && B_N_CONTIGUOUS
    multiply_k_tail(n_start, m0, acc);
#endif

    // Sums of the squares of what this invocation stores (for STORE_SQUARES; else optimised away).
    float squares = 0.0, row_squares = 0.0;
    [[unroll]] for (uint i = 0; i < TM; ++i) {
        const uint m = m0 + i;
        if (m >= M) break;
        [[unroll]] for (uint c = 0; c < NC; ++c) {
            const uint n = n_start + 4 * c;
#ifdef STORE4
            // One vec4 store instead of four: on lavapipe each store instruction loops over the lanes.
            if (n + 3 < N) {
                STORE4(m, n, acc[i][c]);
                squares += dot(acc[i][c], acc[i][c]);
                continue;
            }
#endif
            for (uint j = 0; j < 4; ++j)
                if (n + j < N) {
                    STORE(m, n + j, acc[i][c][j]);
                    squares += acc[i][c][j] * acc[i][c][j];
                }
        }
    }
#ifdef STORE_ROW_SUM
    // A's row sums, once per row: by the first column of workgroups, one fetch per 4 values.
    if (ROW_SUMS && gl_WorkGroupID.x == 0) {
#if A_M_CONTIGUOUS
        // Lane l sums rows m0 + 4 l .. + 3 together, one k at a time (M % 4 == 0: whole quads).
        for (uint r = 4 * gl_LocalInvocationID.x; r < TM && m0 + r < M; r += 4 * WG_X) {
            vec4 sum = vec4(0.0);
            for (uint k = 0; k < K; ++k) sum += A_ROWS4(k, m0 + r);
            [[unroll]] for (uint j = 0; j < 4; ++j) STORE_ROW_SUM(m0 + r + j, sum[j]);
            row_squares += dot(sum, sum);
        }
#else
        for (uint i = gl_LocalInvocationID.x; i < TM && m0 + i < M; i += WG_X) {
            float sum = 0.0;
            for (uint k4 = 0; k4 < K / 4; ++k4) {
                const vec4 a = A_QUAD(m0 + i, k4);
                sum = (((sum + a.x) + a.y) + a.z) + a.w;   // k order, like a float loop
            }
            STORE_ROW_SUM(m0 + i, sum);
            row_squares += sum * sum;
        }
#endif
    }
#endif
#ifdef STORE_SQUARES
    STORE_SQUARES((gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG_X + gl_LocalInvocationID.x,
                  squares, row_squares);
#endif
}
