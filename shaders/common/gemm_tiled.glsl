// C[M, N] = A[M, K] * B[K, N] through shared memory: common/gemm.glsl's core for tiles with a BK
// (vkbackprop/layers/gemm.py compiles them with -DSHARED_MEMORY=1), meant for GPUs, where a block of
// A and B copied once into shared memory serves every invocation of the workgroup (on lavapipe the
// best plain tile is faster).
// Same includer interface as common/gemm.glsl (A_AT, B_AT, STORE, B_COLUMN_T/B_COLUMN, K_FIRST/K_LAST;
// K_FIRST/K_LAST must be the same for the whole workgroup: the loop holds barriers), plus two hints
// that order the copies so neighbouring invocations read neighbouring addresses (speed only):
//   A_M_CONTIGUOUS   A is stored [k][m] (default: [m][k])
//   B_K_CONTIGUOUS   B is stored [n][k] (default: [k][n])
//
// A workgroup of WG_X x WG_Y invocations computes a BM x BN block (BM = WG_Y*TM, BN = WG_X*TN) and
// steps through the reduction BK terms at a time. Each step all invocations copy the next BK slice of
// A and B into shared memory while they multiply the current one (two buffers: one barrier a step).
// An invocation's TM rows are contiguous and its TN columns are TN/4 quads spaced WG_X quads apart, so
// it reads both from shared memory as vec4 and its neighbours in x read neighbouring quads.
// No subgroup operations: nothing here assumes a subgroup size.

#extension GL_EXT_control_flow_attributes : require
// Every fixed-length loop is unrolled: accumulators and copy indices indexed by a loop variable
// would otherwise live in per-invocation scratch memory instead of registers.

// The tile's constraints (TM and TN multiples of 4: whole quads; BM*BK and BK*BN multiples of the
// invocations: equal shares of each copy) are checked in Python (vkbackprop/layers/gemm.py).
layout(constant_id = GEMM_CONSTANTS + 4) const uint BK = 1;   // reduction terms per step
#define BM (WG_Y * TM)
#define BN (WG_X * TN)
#define INVOCATIONS (WG_X * WG_Y)
#define A_COPIES (BM * BK / INVOCATIONS)
#define B_COPIES (BK * BN / INVOCATIONS)

// Each block is copied along the dimension it is stored along (A_ALONG_K, B_ALONG_K), so
// neighbouring invocations read neighbouring addresses. A block copied along k has rows of quads
// one quad longer: the copies of neighbouring k then fall in different banks (BK of them at one
// row would otherwise share a bank).
#ifdef A_M_CONTIGUOUS
#define A_ALONG_K false
#else
#define A_ALONG_K true
#endif
#ifdef B_K_CONTIGUOUS
#define B_ALONG_K true
#else
#define B_ALONG_K false
#endif
#define A_PAD uint(A_ALONG_K)
#define B_PAD uint(B_ALONG_K)
shared vec4 a_block[2][BK][BM / 4 + A_PAD];   // [buffer][k][row quad]
shared vec4 b_block[2][BK][BN / 4 + B_PAD];   // [buffer][k][column quad]

// This invocation's share of each step's copy: A element r is (a_m[r], a_k[r]) of the block, read
// from row a_row[r]; B element r is (b_k[r], b_n[r]), read from column b_col[r]. Rows and columns
// past the matrix load a valid clamped element and are never stored.
uint a_m[A_COPIES], a_k[A_COPIES], a_row[A_COPIES];
uint b_n[B_COPIES], b_k[B_COPIES];
B_COLUMN_T b_col[B_COPIES];
float a_next[A_COPIES], b_next[B_COPIES];

// (position across the block, k) of the e-th element of a `width` x BK block's copy.
uvec2 copy_position(const uint e, const uint width, const bool along_k) {
    return along_k ? uvec2(e / BK, e % BK) : uvec2(e % width, e / width);
}

void assign_copies(const uint invocation, const uint m_block, const uint n_block) {
    [[unroll]] for (uint r = 0; r < A_COPIES; ++r) {
        const uvec2 mk = copy_position(invocation + r * INVOCATIONS, BM, A_ALONG_K);
        a_m[r] = mk.x;
        a_k[r] = mk.y;
        a_row[r] = min(m_block + a_m[r], M - 1);
    }
    [[unroll]] for (uint r = 0; r < B_COPIES; ++r) {
        const uvec2 nk = copy_position(invocation + r * INVOCATIONS, BN, B_ALONG_K);
        b_n[r] = nk.x;
        b_k[r] = nk.y;
        b_col[r] = B_COLUMN(min(n_block + b_n[r], N - 1));
    }
}

// Reads this invocation's share of the slice [k0, k0 + BK) into registers; terms from K_LAST on are
// zeros (the product's last step may be partial).
void fetch(const uint k0) {
    [[unroll]] for (uint r = 0; r < A_COPIES; ++r) {
        const uint k = k0 + a_k[r];
        a_next[r] = 0.0;
        if (k < K_LAST) a_next[r] = A_AT(a_row[r], k);
    }
    [[unroll]] for (uint r = 0; r < B_COPIES; ++r) {
        const uint k = k0 + b_k[r];
        b_next[r] = 0.0;
        if (k < K_LAST) b_next[r] = B_AT(k, b_col[r]);
    }
}

void deposit(const uint into) {
    [[unroll]] for (uint r = 0; r < A_COPIES; ++r) a_block[into][a_k[r]][a_m[r] / 4][a_m[r] % 4] = a_next[r];
    [[unroll]] for (uint r = 0; r < B_COPIES; ++r) b_block[into][b_k[r]][b_n[r] / 4][b_n[r] % 4] = b_next[r];
}

void main() {
    // (Not x and y: an includer's STORE may name its buffers so.)
    const uint lane_x = gl_LocalInvocationID.x, lane_y = gl_LocalInvocationID.y;
    const uint m_block = gl_WorkGroupID.y * BM, n_block = gl_WorkGroupID.x * BN;
    assign_copies(lane_y * WG_X + lane_x, m_block, n_block);

    vec4 acc[TM][TN / 4];
    [[unroll]] for (uint i = 0; i < TM; ++i)
        [[unroll]] for (uint j = 0; j < TN / 4; ++j) acc[i][j] = vec4(0.0);

    fetch(K_FIRST);
    deposit(0);
    barrier();
    uint current = 0;
    for (uint k0 = K_FIRST; k0 < K_LAST; k0 += BK) {
        const bool more = k0 + BK < K_LAST;   // the same for the whole workgroup
        if (more) fetch(k0 + BK);             // in flight while this step multiplies
        [[unroll]] for (uint k = 0; k < BK; ++k) {
            vec4 a[TM / 4], b[TN / 4];
            [[unroll]] for (uint i = 0; i < TM / 4; ++i) a[i] = a_block[current][k][lane_y * (TM / 4) + i];
            [[unroll]] for (uint j = 0; j < TN / 4; ++j) b[j] = b_block[current][k][j * WG_X + lane_x];
            [[unroll]] for (uint i = 0; i < TM; ++i)
                [[unroll]] for (uint j = 0; j < TN / 4; ++j) acc[i][j] = fma(vec4(a[i / 4][i % 4]), b[j], acc[i][j]);
        }
        // The other buffer was last read in the previous step, which every invocation finished
        // before that step's barrier; this barrier publishes it and retires the current one.
        if (more) deposit(current ^ 1);
        barrier();
        current ^= 1;
    }

    [[unroll]] for (uint i = 0; i < TM; ++i) {
        const uint m = m_block + lane_y * TM + i;
        if (m >= M) break;
        [[unroll]] for (uint j = 0; j < TN / 4; ++j)
            [[unroll]] for (uint c = 0; c < 4; ++c) {
                const uint n = n_block + (j * WG_X + lane_x) * 4 + c;
                if (n < N) STORE(m, n, acc[i][j][c]);
            }
    }
}
