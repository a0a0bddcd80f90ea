#version 450
#extension GL_GOOGLE_include_directive : require
// y[b, o, oh, ow] = bias[o] + sum over (c, kh, kw) of
//                   weight[o, c, kh, kw] * x[b, g * GROUP_IN + c, window(oh, ow) + tap(kh, kw)]
// for output channel o of group g. Implicit GEMM per group (workgroup layer z = g): rows the
// group's output channels, columns (b, oh, ow), reduction (c, kh, kw). The unfolded input (im2col)
// is gathered from x as the core asks for it, never stored.

#include "geometry.glsl"
layout(constant_id = 16) const uint M = 1;  // GROUP_OUT
layout(constant_id = 17) const uint N = 1;  // BATCH * OUT_PLANE
layout(constant_id = 18) const uint K = 1;  // GROUP_IN * TAPS
layout(constant_id = 19) const bool HAS_BIAS = true;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(set = 0, binding = 3) writeonly buffer Y { float y[]; };

#define GROUP gl_WorkGroupID.z

// A column's window, decomposed once: x's first plane of its sample's group, its top-left position.
struct Window { uint plane; ivec2 origin; };

Window column_window(uint n) {
    const uvec2 sample_position = split_index(n, OUT_PLANE);
    return Window((sample_position.x * IN_C + GROUP * GROUP_IN) * IN_PLANE, window_origin(sample_position.y));
}

// Row k = (c, tap) of the unfolded input at a column's window.
float unfolded(uint k, Window w) {
    const uvec2 channel_tap = split_index(k, TAPS);
    return INPUT_AT(w.plane + channel_tap.x * IN_PLANE, w.origin + tap_offset(channel_tap.y));
}

void store(uint m, uint n, float v) {
    const uint o = GROUP * GROUP_OUT + m;
    const uvec2 sample_position = split_index(n, OUT_PLANE);
    y[(sample_position.x * OUT_C + o) * OUT_PLANE + sample_position.y] = HAS_BIAS ? v + bias[o] : v;
}

#define A_AT(m, k) weight[(GROUP * GROUP_OUT + (m)) * K + (k)]
#define B_COLUMN_T Window
#define B_COLUMN(n) column_window(n)
#define B_AT(k, w) unfolded(k, w)
#define STORE(m, n, v) store(m, n, v)
#define GEMM_CONSTANTS 20   // the core's tile constants follow this shader's
#include "../common/gemm.glsl"
