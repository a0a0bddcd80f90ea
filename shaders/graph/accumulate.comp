#version 450
#extension GL_GOOGLE_include_directive : require
// total += part: adds one more partial derivative into a gradient that several consumers feed.
// The seed's rule: partials from several consumers of a value (or uses of a parameter) add.
// Works on quads of 4 elements (see common/vec4_index.glsl).

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer Part { float part[]; };
layout(set = 0, binding = 1) buffer Total { float total[]; };
layout(set = 0, binding = 2) readonly buffer Part4 { vec4 part4[]; };   // the same buffers as whole quads
layout(set = 0, binding = 3) buffer Total4 { vec4 total4[]; };

layout(local_size_x = 64) in;
#include "../common/vec4_index.glsl"

void main() {
    const uint stride = grid_invocations();
    uint q = flat_index();
    for (; q < QUADS; q += stride) {
        total4[q] += part4[q];
    }
    if (q == QUADS) for (uint i = 4 * q; i < NUMEL; ++i) total[i] += part[i];   // the tail
}
