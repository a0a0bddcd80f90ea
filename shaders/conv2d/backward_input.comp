#version 450
#extension GL_GOOGLE_include_directive : require
// dx[b, g * GROUP_IN + c, ih, iw] = sum over (o, kh, kw) of
//     weight[g * GROUP_OUT + o, c, kh, kw] * dy[b, g * GROUP_OUT + o, oh, ow]
// over the outputs (oh, ow) whose tap (kh, kw) lands on (ih, iw), i.e.
// (oh, ow) * stride = (ih, iw) + padding - (kh, kw) * dilation. Implicit GEMM per group (workgroup
// layer z = g): rows the group's input channels, columns (b, ih, iw), reduction (o, kh, kw); a tap
// that lands on no output (between strides, or beyond the edge) adds zero. The store may mask with
// x (this layer's input, a ReLU's output) and add to dx (common/dx_epilogue.glsl).

#include "geometry.glsl"
layout(constant_id = 16) const uint M = 1;  // GROUP_IN
layout(constant_id = 17) const uint N = 1;  // BATCH * IN_PLANE
layout(constant_id = 18) const uint K = 1;  // GROUP_OUT * TAPS

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };
layout(set = 0, binding = 3) readonly buffer X { float x[]; };   // read by a fused ReLU backward only
layout(set = 0, binding = 4) readonly buffer Partials { float partials[]; };   // dx, read with ACCUMULATE only
#define DX_EPILOGUE_CONSTANTS 19
#include "../common/dx_epilogue.glsl"

#define GROUP gl_WorkGroupID.z

// A column decomposed once: dy's first plane of its sample's group, and its input position plus
// the top/left padding (= output position * stride + tap offset, for the taps that reach it).
struct Column { uint plane; ivec2 padded; };

Column column_of(uint n) {
    const uvec2 sample_position = split_index(n, IN_PLANE);
    return Column((sample_position.x * OUT_C + GROUP * GROUP_OUT) * OUT_PLANE,
                  ivec2(split_index(sample_position.y, IN_W)) + ivec2(PAD_H, PAD_W));
}

// Row k = (o, tap): dy at the output whose tap lands on the column's input position, if any.
float upstream(uint k, Column col) {
    const uvec2 channel_tap = split_index(k, TAPS);
    const ivec2 strided = col.padded - tap_offset(channel_tap.y);
    const uvec2 stride = uvec2(STRIDE_H, STRIDE_W);
    const uvec2 o = uvec2(max(strided, 0)) / stride;
    const bool hit = all(greaterThanEqual(strided, ivec2(0))) && all(equal(o * stride, uvec2(strided)))
                     && o.x < OUT_H && o.y < OUT_W;
    return hit ? dy[col.plane + channel_tap.x * OUT_PLANE + o.x * OUT_W + o.y] : 0.0;
}

float weight_at(uint m, uint k) {
    const uvec2 channel_tap = split_index(k, TAPS);
    return weight[((GROUP * GROUP_OUT + channel_tap.x) * GROUP_IN + m) * TAPS + channel_tap.y];
}

void store(uint m, uint n, float v) {
    const uvec2 sample_position = split_index(n, IN_PLANE);
    const uint i = (sample_position.x * IN_C + GROUP * GROUP_IN + m) * IN_PLANE + sample_position.y;
    STORE_DX(dx[i], partials[i], v, x[i]);
}

#define A_AT(m, k) weight_at(m, k)
#define B_COLUMN_T Column
#define B_COLUMN(n) column_of(n)
#define B_AT(k, col) upstream(k, col)
#define STORE(m, n, v) store(m, n, v)
#define GEMM_CONSTANTS 21   // the core's tile constants follow this shader's
#include "../common/gemm.glsl"
