#version 450
#extension GL_GOOGLE_include_directive : require
// Dropout as the identity: y = x. Forward in eval mode (prediction), and both passes when p = 0
// (backward binds dy as x and dx as y).

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) y[i] = x[i];
}
