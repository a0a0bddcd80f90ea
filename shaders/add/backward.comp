#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy: every input of a sum receives the sum's whole gradient.

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) writeonly buffer DX { float dx[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) dx[i] = dy[i];
}
