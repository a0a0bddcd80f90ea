#version 450
#extension GL_GOOGLE_include_directive : require
// y = x if x > 0 else NEGATIVE_SLOPE * x   (torch.nn.LeakyReLU; -0 stays -0)

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const float NEGATIVE_SLOPE = 0.01;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) {
        const float v = x[i];
        y[i] = v > 0.0 ? v : v * NEGATIVE_SLOPE;
    }
}
