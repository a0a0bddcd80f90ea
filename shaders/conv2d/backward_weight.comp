#version 450
#extension GL_GOOGLE_include_directive : require
// dweight[g * GROUP_OUT + o, c, kh, kw] = sum over (b, oh, ow) of
//     dy[b, g * GROUP_OUT + o, oh, ow] * x[b, g * GROUP_IN + c, window(oh, ow) + tap(kh, kw)]
// Implicit GEMM per group: rows the group's output channels, columns (c, kh, kw), reduction
// (b, oh, ow), split into SLICES slices of K terms (split-K: the reduction is long, e.g. 65,536
// terms for batch 64 at 32x32). Workgroup layer z = g * SLICES + s sums slice s into
// dweight[s] (the gradient itself when SLICES == 1, else partial sums that sum_slices.comp adds).

#include "geometry.glsl"
layout(constant_id = 16) const uint M = 1;  // GROUP_OUT
layout(constant_id = 17) const uint N = 1;  // GROUP_IN * TAPS
layout(constant_id = 18) const uint K = 1;  // terms per slice; the whole reduction is BATCH * OUT_PLANE
layout(constant_id = 19) const uint SLICES = 1;

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) readonly buffer X { float x[]; };
layout(set = 0, binding = 2) writeonly buffer DWeight { float dweight[]; };

#define GROUP (gl_WorkGroupID.z / SLICES)
#define SLICE (gl_WorkGroupID.z % SLICES)
#define K_FIRST (SLICE * K)
#define K_LAST min(K_FIRST + K, BATCH * OUT_PLANE)

// A column (c, tap) decomposed once: x's plane of channel c in sample 0, and the tap's offset.
struct Tap { uint plane; ivec2 offset; };

Tap column_tap(uint n) {
    const uvec2 channel_tap = split_index(n, TAPS);
    return Tap((GROUP * GROUP_IN + channel_tap.x) * IN_PLANE, tap_offset(channel_tap.y));
}

// Row k = (b, oh, ow) of the unfolded input, at a column's tap.
float unfolded(uint k, Tap tap) {
    const uvec2 sample_position = split_index(k, OUT_PLANE);
    return INPUT_AT(sample_position.x * IN_C * IN_PLANE + tap.plane, window_origin(sample_position.y) + tap.offset);
}

float upstream(uint m, uint k) {
    const uvec2 sample_position = split_index(k, OUT_PLANE);
    return dy[(sample_position.x * OUT_C + GROUP * GROUP_OUT + m) * OUT_PLANE + sample_position.y];
}

#define A_AT(m, k) upstream(m, k)
#define B_COLUMN_T Tap
#define B_COLUMN(n) column_tap(n)
#define B_AT(k, tap) unfolded(k, tap)
#define B_K_CONTIGUOUS   // k runs over output positions: neighbouring input positions
#define STORE(m, n, v) dweight[(SLICE * OUT_C + GROUP * GROUP_OUT + (m)) * N + (n)] = (v)
#define GEMM_CONSTANTS 20   // the core's tile constants follow this shader's
#include "../common/gemm.glsl"
