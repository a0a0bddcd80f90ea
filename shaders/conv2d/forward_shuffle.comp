#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// forward.comp on the vec4 + subgroup-shuffle GEMM core (common/gemm_shuffle.glsl), where
// vkbackprop/layers/conv.py finds it applies: OUT_W % 4 == 0 (a lane's four columns are neighbours
// in one output row), GROUP_IN * TAPS % 4 == 0 (whole quads of weight rows), x a whole number of quads.
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

// B[k][n0 .. n0 + 3]: row k = (c, tap) of the unfolded input at output columns n0 .. n0 + 3, which
// lie in one output row, so their taps lie STRIDE_W apart in one input row.
vec4 unfolded_quad(const uint k, const uint n0) {
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
#define A4(i) LOAD4(weight, GROUP * GROUP_OUT * K / 4 + (i))   // the group's rows: weight[o][c][kh][kw]
#define B_ROW4(k, n0) unfolded_quad(k, n0)
#define STORE(m, n, v) y[output_index(m, n) / 4][output_index(m, n) % 4] = (v) + bias_of(m)
#define STORE4(m, n, v) y[output_index(m, n) / 4] = (v) + bias_of(m)
#define GEMM_CONSTANTS 20   // the core's tile constants follow this shader's
#include "../common/gemm_shuffle.glsl"
