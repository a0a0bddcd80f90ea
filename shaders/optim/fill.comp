#version 450
#extension GL_GOOGLE_include_directive : require
// values[i] = VALUE. Device-only memory starts with whatever was there before (kp does not
// initialise storage buffers), so optimizer state is zeroed with this once, when a plan is made.

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const float VALUE = 0.0;

layout(set = 0, binding = 0) writeonly buffer Values { float values[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) values[i] = VALUE;
}
