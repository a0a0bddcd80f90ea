#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy where the output was positive, else 0 (the derivative at 0 is taken as 0, like PyTorch).
// Uses the saved output y: y > 0 exactly where x > 0. On quads of 4 (common/vec4_index.glsl).

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer Y { float y[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };
layout(set = 0, binding = 3) readonly buffer Y4 { vec4 y4[]; };      // the same buffers as whole quads
layout(set = 0, binding = 4) readonly buffer DY4 { vec4 dy4[]; };
layout(set = 0, binding = 5) writeonly buffer DX4 { vec4 dx4[]; };

layout(local_size_x = 64) in;
#include "../common/vec4_index.glsl"

void main() {
    const uint stride = grid_invocations();
    uint q = flat_index();
    for (; q < QUADS; q += stride) {
        dx4[q] = mix(vec4(0.0), dy4[q], greaterThan(y4[q], vec4(0.0)));   // a per-component select
    }
    if (q == QUADS) for (uint i = 4 * q; i < NUMEL; ++i) dx[i] = y[i] > 0.0 ? dy[i] : 0.0;   // the tail
}
