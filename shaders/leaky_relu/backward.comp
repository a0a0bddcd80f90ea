#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy where x > 0, else NEGATIVE_SLOPE * dy: the derivative at exactly 0 is NEGATIVE_SLOPE, as
// in PyTorch. Uses the saved input x (with a negative slope below 0 the sign of y does not tell).

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const float NEGATIVE_SLOPE = 0.01;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) dx[i] = x[i] > 0.0 ? dy[i] : dy[i] * NEGATIVE_SLOPE;
}
