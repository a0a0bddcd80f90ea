#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// backward_input.comp on the vec4 + subgroup-shuffle GEMM core (common/gemm_shuffle.glsl), where
// vkbackprop/layers/conv.py finds it applies: IN_W % 4 == 0 (a lane's four columns are neighbours
// in one input row), GROUP_OUT * TAPS % 4 == 0, dy and weight whole numbers of quads.
// dx[b, g * GROUP_IN + c, ih, iw] = sum over (o, kh, kw) of
//     weight[g * GROUP_OUT + o, c, kh, kw] * dy[b, g * GROUP_OUT + o, oh, ow]
// over the outputs (oh, ow) whose tap (kh, kw) lands on (ih, iw): (oh, ow) * stride = (ih, iw) +
// padding - (kh, kw) * dilation. Rows the group's input channels, columns (b, ih, iw), reduction
// (o, kh, kw); group g = workgroup layer z. The store may mask with x (this layer's input, a ReLU's
// output) and add to dx (common/dx_epilogue.glsl).

#include "geometry.glsl"
layout(constant_id = 16) const uint M = 1;  // GROUP_IN
layout(constant_id = 17) const uint N = 1;  // BATCH * IN_PLANE
layout(constant_id = 18) const uint K = 1;  // GROUP_OUT * TAPS

VEC4_INPUT(0, DY, dy);
VEC4_INPUT(1, Weight, weight);
layout(set = 0, binding = 2) writeonly buffer DX { vec4 dx[]; };   // IN_PLANE % 4 == 0: whole quads
VEC4_INPUT(3, X, x);   // read by a fused ReLU backward only
layout(set = 0, binding = 4) readonly buffer Partials { vec4 partials[]; };   // dx, read with ACCUMULATE only
#define DX_EPILOGUE_CONSTANTS 19
#include "../common/dx_epilogue.glsl"

#define GROUP gl_WorkGroupID.z

#define SOURCE4(q) LOAD4(dy, q)
const uint SOURCE_QUADS = BATCH * OUT_C * OUT_PLANE / 4;
#include "quads.glsl"

// A[m][4k4 .. 4k4 + 3] = weight[g * GROUP_OUT + o, m, tap] for k = (o, tap): not neighbours in
// weight, so four values each from its own quad.
vec4 weight_quad(const uint m, const uint k4) {
    vec4 a;
    [[unroll]] for (uint q = 0; q < 4; ++q) {
        const uvec2 channel_tap = split_index(4 * k4 + q, TAPS);
        const uint i = ((GROUP * GROUP_OUT + channel_tap.x) * GROUP_IN + m) * TAPS + channel_tap.y;
        a[q] = LOAD1(weight, i);
    }
    return a;
}

// B[k][n0 .. n0 + 3], row k = (o, tap): dy at the outputs whose tap lands on input columns
// n0 .. n0 + 3, neighbours in one input row. With STRIDE_W 1 those outputs are neighbours in one
// output row; with a larger stride a column between strides gets 0.
vec4 upstream_quad(const uint k, const uint n0) {
    const uvec2 channel_tap = split_index(k, TAPS);
    const uvec2 sample_position = split_index(n0, IN_PLANE);
    // (oh, ow) * stride for the first column, where the tap lands on it (may fall between strides).
    const ivec2 strided = ivec2(split_index(sample_position.y, IN_W)) + ivec2(PAD_H, PAD_W)
                          - tap_offset(channel_tap.y);
    const int oh = strided.x >= 0 && strided.x % int(STRIDE_H) == 0 ? strided.x / int(STRIDE_H) : -1;
    const uint plane = (sample_position.x * OUT_C + GROUP * GROUP_OUT + channel_tap.x) * OUT_PLANE;
    if (STRIDE_W == 1)
        return image_quad(int(plane) + oh * int(OUT_W) + strided.y, ivec2(oh, strided.y), OUT_H, OUT_W, 1);
    vec4 v;
    [[unroll]] for (int j = 0; j < 4; ++j) {
        const int column = strided.y + j;   // ow * STRIDE_W where column j's tap lands
        const int ow = column >= 0 && column % int(STRIDE_W) == 0 ? column / int(STRIDE_W) : -1;
        v[j] = image_value(int(plane) + oh * int(OUT_W) + ow, ivec2(oh, ow), OUT_H, OUT_W);
    }
    return v;
}

uint input_index(const uint m, const uint n) {
    const uvec2 sample_position = split_index(n, IN_PLANE);
    return (sample_position.x * IN_C + GROUP * GROUP_IN + m) * IN_PLANE + sample_position.y;
}

#define B_N_CONTIGUOUS 1
#define A_QUAD(m, k4) weight_quad(m, k4)
#define B_ROW4(k, n0) upstream_quad(k, n0)
#define STORE(m, n, v) STORE_DX(dx[input_index(m, n) / 4][input_index(m, n) % 4], \
                              partials[input_index(m, n) / 4][input_index(m, n) % 4], v, LOAD1(x, input_index(m, n)))
#define STORE4(m, n, v) STORE_DX4(dx[input_index(m, n) / 4], partials[input_index(m, n) / 4], v, LOAD4(x, input_index(m, n) / 4))
#define GEMM_CONSTANTS 21   // the core's tile constants follow this shader's
#include "../common/gemm_shuffle.glsl"
