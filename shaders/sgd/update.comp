#version 450
#extension GL_GOOGLE_include_directive : require
// SGD without momentum, like torch.optim.SGD: g = grad + weight_decay * param; param -= lr * g.
// The hyper-parameters are read from a small device buffer written with each batch, so changing
// them never re-records the step. With weight_decay 0, g is grad exactly.

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer Hyper { float hyper[]; };  // [lr, weight_decay, momentum, 1 - dampening, first]
layout(set = 0, binding = 1) readonly buffer Grad { float grad[]; };
layout(set = 0, binding = 2) buffer Param { float param[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i >= NUMEL) return;
    const float p = param[i];
    const float g = grad[i] + hyper[1] * p;
    param[i] = p - hyper[0] * g;
}
