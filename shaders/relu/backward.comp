#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy where the output was positive, else 0 (the derivative at 0 is taken as 0, like PyTorch).
// Uses the saved output y: y > 0 exactly where x > 0.

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer Y { float y[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) dx[i] = y[i] > 0.0 ? dy[i] : 0.0;
}
