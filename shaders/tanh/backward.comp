#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy * (1 - y * y) from the saved output y, as PyTorch's tanh_backward.

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer Y { float y[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) {
        const float t = y[i];
        dx[i] = dy[i] * (1.0 - t * t);
    }
}
