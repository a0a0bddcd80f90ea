#version 450
#extension GL_GOOGLE_include_directive : require
// y = max(x, 0), on quads of 4 elements (see common/vec4_index.glsl).

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(set = 0, binding = 2) readonly buffer X4 { vec4 x4[]; };    // x as whole quads
layout(set = 0, binding = 3) writeonly buffer Y4 { vec4 y4[]; };   // y as whole quads

layout(local_size_x = 64) in;
#include "../common/vec4_index.glsl"

void main() {
    const uint stride = grid_invocations();
    uint q = flat_index();
    for (; q < QUADS; q += stride) {
        y4[q] = max(x4[q], 0.0);
    }
    if (q == QUADS) for (uint i = 4 * q; i < NUMEL; ++i) y[i] = max(x[i], 0.0);   // the tail
}
