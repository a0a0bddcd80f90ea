#version 450
#extension GL_GOOGLE_include_directive : require
// y = 1 / (1 + exp(-x)), from exp(-|x|) so nothing overflows: exactly 0 / 1 far out.

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"
#include "../common/erf.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) y[i] = vkb_sigmoid(x[i]);
}
