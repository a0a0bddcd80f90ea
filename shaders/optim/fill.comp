#version 450
#extension GL_GOOGLE_include_directive : require
// values[i] = VALUE. Device-only memory starts with whatever was there before (kp does not
// initialise storage buffers), so optimizer state is zeroed with this once, when a plan is made.
// Works on quads of 4 elements (see common/vec4_index.glsl).

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const float VALUE = 0.0;

layout(set = 0, binding = 0) writeonly buffer Values { float values[]; };
layout(set = 0, binding = 1) writeonly buffer Values4 { vec4 values4[]; };   // the same buffer as whole quads

layout(local_size_x = 64) in;
#include "../common/vec4_index.glsl"

void main() {
    const uint stride = grid_invocations();
    uint q = flat_index();
    for (; q < QUADS; q += stride) {
        values4[q] = vec4(VALUE);
    }
    if (q == QUADS) for (uint i = 4 * q; i < NUMEL; ++i) values[i] = VALUE;   // the tail
}
