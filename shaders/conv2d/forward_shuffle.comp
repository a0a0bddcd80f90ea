#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// forward.comp on the vec4 + subgroup-shuffle GEMM core (common/gemm_shuffle.glsl), where
// vkbackprop/layers/conv.py finds it applies: OUT_W % 4 == 0 (a lane's four columns are neighbours
// in one output row), x and the weight whole numbers of quads. A reduction of no whole quads (a first
// layer's 3 channels x 9 taps) runs to the next quad, its terms past K zero.
// y[b, o, oh, ow] = bias[o] + sum over (c, kh, kw) of
//                   weight[o, c, kh, kw] * x[b, g * GROUP_IN + c, window(oh, ow) + tap(kh, kw)]
// Rows the group's output channels, columns (b, oh, ow), reduction (c, kh, kw); group g = workgroup
// layer z.

#include "geometry.glsl"
layout(constant_id = 16) const uint M = 1;  // GROUP_OUT
layout(constant_id = 17) const uint N = 1;  // BATCH * OUT_PLANE
layout(constant_id = 18) const uint K = 1;  // GROUP_IN * TAPS
layout(constant_id = 19) const bool HAS_BIAS = true;

VEC4_INPUT(0, X, x);
VEC4_INPUT(1, Weight, weight);
layout(set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(set = 0, binding = 3) writeonly buffer Y { vec4 y[]; };   // OUT_PLANE % 4 == 0: whole quads

#define GROUP gl_WorkGroupID.z

#define SOURCE4(q) LOAD4(x, q)
const uint SOURCE_QUADS = BATCH * IN_C * IN_PLANE / 4;
#include "quads.glsl"

// A[m][4k4 .. 4k4 + 3], the group's weight row m: one quad where rows are whole quads, else four
// values, past the row's end its last again (the zeros of unfolded_quad meet them).
vec4 weight_quad(const uint m, const uint k4) {
    const uint row = (GROUP * GROUP_OUT + m) * K;
    if (K % 4 == 0) return LOAD4(weight, row / 4 + k4);   // a specialization constant: one branch is compiled
    vec4 a;
    [[unroll]] for (uint q = 0; q < 4; ++q) {
        const uint i = row + min(4 * k4 + q, K - 1);
        a[q] = LOAD1(weight, i);
    }
    return a;
}

// B[k][n0 .. n0 + 3]: row k = (c, tap) of the unfolded input at output columns n0 .. n0 + 3, which
// lie in one output row, so their taps lie STRIDE_W apart in one input row. 0 for k past K (so
// that no value of another channel, infinite perhaps, meets the zero weights there).
vec4 unfolded_quad(const uint k, const uint n0) {
    if (k >= K) return vec4(0.0);
    const uvec2 sample_position = split_index(n0, OUT_PLANE);
    const uvec2 channel_tap = split_index(k, TAPS);
    const ivec2 at = window_origin(sample_position.y) + tap_offset(channel_tap.y);
    const uint plane = (sample_position.x * IN_C + GROUP * GROUP_IN + channel_tap.x) * IN_PLANE;
    return image_quad(int(plane) + at.x * int(IN_W) + at.y, at, IN_H, IN_W, STRIDE_W);
}

// y's flat index of output channel m of the group at column n.
uint output_index(const uint m, const uint n) {
    const uvec2 sample_position = split_index(n, OUT_PLANE);
    return (sample_position.x * OUT_C + GROUP * GROUP_OUT + m) * OUT_PLANE + sample_position.y;
}

float bias_of(const uint m) { return HAS_BIAS ? bias[GROUP * GROUP_OUT + m] : 0.0; }

#define B_N_CONTIGUOUS 1
#define A_QUAD(m, k4) weight_quad(m, k4)
#define B_ROW4(k, n0) unfolded_quad(k, n0)
#define K4_FIRST 0
#define K4_LAST ((K + 3) / 4)
#define STORE(m, n, v) y[output_index(m, n) / 4][output_index(m, n) % 4] = (v) + bias_of(m)
#define STORE4(m, n, v) y[output_index(m, n) / 4] = (v) + bias_of(m)
#define GEMM_CONSTANTS 20   // the core's tile constants follow this shader's
#include "../common/gemm_shuffle.glsl"
