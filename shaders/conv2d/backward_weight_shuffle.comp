#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// backward_weight.comp on the vec4 + subgroup-shuffle GEMM core (common/gemm_shuffle.glsl), where
// vkbackprop/layers/conv.py finds it applies: OUT_W % 4 == 0 (four neighbouring terms of the
// reduction lie in one output row), slices of a multiple of 4 terms, x a whole number of quads.
// dweight[g * GROUP_OUT + o, c, kh, kw] = sum over (b, oh, ow) of
//     dy[b, g * GROUP_OUT + o, oh, ow] * x[b, g * GROUP_IN + c, window(oh, ow) + tap(kh, kw)]
// Rows the group's output channels, columns (c, kh, kw), reduction (b, oh, ow) split into SLICES
// slices of K terms: workgroup layer z = g * SLICES + s sums slice s into dweight[s] (the gradient
// itself when SLICES == 1, else partial sums that sum_slices.comp adds).

#include "geometry.glsl"
layout(constant_id = 16) const uint M = 1;  // GROUP_OUT
layout(constant_id = 17) const uint N = 1;  // GROUP_IN * TAPS
layout(constant_id = 18) const uint K = 1;  // terms per slice (a multiple of 4); the whole reduction is BATCH * OUT_PLANE
layout(constant_id = 19) const uint SLICES = 1;

VEC4_INPUT(0, DY, dy);
VEC4_INPUT(1, X, x);
layout(set = 0, binding = 2) writeonly buffer DWeight { float dweight[]; };

#define GROUP (gl_WorkGroupID.z / SLICES)
#define SLICE (gl_WorkGroupID.z % SLICES)

#define SOURCE4(q) LOAD4(x, q)
const uint SOURCE_QUADS = BATCH * IN_C * IN_PLANE / 4;
#include "quads.glsl"

// A[m][4k4 .. 4k4 + 3]: dy of output channel m at four neighbouring positions of one plane.
vec4 upstream_quad(const uint m, const uint k4) {
    const uvec2 sample_position = split_index(4 * k4, OUT_PLANE);
    return LOAD4(dy, ((sample_position.x * OUT_C + GROUP * GROUP_OUT + m) * OUT_PLANE + sample_position.y) / 4);
}

// B[4k4 .. 4k4 + 3][n]: column n = (c, tap) of the unfolded input at four neighbouring output
// positions of one row, whose taps lie STRIDE_W apart in one input row.
vec4 unfolded_quad(const uint n, const uint k4) {
    const uvec2 channel_tap = split_index(n, TAPS);
    const uvec2 sample_position = split_index(4 * k4, OUT_PLANE);
    const ivec2 at = window_origin(sample_position.y) + tap_offset(channel_tap.y);
    const uint plane = (sample_position.x * IN_C + GROUP * GROUP_IN + channel_tap.x) * IN_PLANE;
    return image_quad(int(plane) + at.x * int(IN_W) + at.y, at, IN_H, IN_W, STRIDE_W);
}

#define B_N_CONTIGUOUS 0
#define A_QUAD(m, k4) upstream_quad(m, k4)
#define B_COLUMN4(n, k4) unfolded_quad(n, k4)
#define K4_FIRST (SLICE * K / 4)
#define K4_LAST min(K4_FIRST + K / 4, BATCH * OUT_PLANE / 4)
#define STORE(m, n, v) dweight[(SLICE * OUT_C + GROUP * GROUP_OUT + (m)) * N + (n)] = (v)
#define GEMM_CONSTANTS 20   // the core's tile constants follow this shader's
#include "../common/gemm_shuffle.glsl"
