#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy: every input of a sum receives the sum's whole gradient. On quads of 4 elements (see
// common/vec4_index.glsl).

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) writeonly buffer DX { float dx[]; };
layout(set = 0, binding = 2) readonly buffer DY4 { vec4 dy4[]; };    // dy and dx as whole quads
layout(set = 0, binding = 3) writeonly buffer DX4 { vec4 dx4[]; };

layout(local_size_x = 64) in;
#include "../common/vec4_index.glsl"

void main() {
    const uint stride = grid_invocations();
    uint q = flat_index();
    for (; q < QUADS; q += stride) dx4[q] = dy4[q];
    if (q == QUADS) for (uint i = 4 * q; i < NUMEL; ++i) dx[i] = dy[i];   // the tail
}
