#version 450
#extension GL_GOOGLE_include_directive : require
// Plain SGD: param -= lr * grad. The learning rate is read from a small device buffer written
// with each batch, so changing it never re-records the step.

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer Hyper { float hyper[]; };  // [lr]
layout(set = 0, binding = 1) readonly buffer Grad { float grad[]; };
layout(set = 0, binding = 2) buffer Param { float param[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) param[i] -= hyper[0] * grad[i];
}
