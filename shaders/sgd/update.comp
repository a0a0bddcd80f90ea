#version 450
#extension GL_GOOGLE_include_directive : require
// SGD without momentum, like torch.optim.SGD: g = grad + weight_decay * param; param -= lr * g.
// The hyper-parameters are read from a small device buffer written with each batch, so changing
// them never re-records the step. With weight_decay 0, g is grad exactly.

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer Hyper { float hyper[]; };  // [lr, weight_decay, momentum, 1 - dampening, first]
layout(set = 0, binding = 1) readonly buffer Grad { float grad[]; };
layout(set = 0, binding = 2) buffer Param { float param[]; };

layout(set = 0, binding = 3) readonly buffer Guard { float guard[]; };  // [clip coef, total norm, bad, first bad + 1] (guard/guard.comp)
layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i >= NUMEL || guard[2] != 0.0) return;   // a non-finite step writes nothing
    const float p = param[i];
    const float g = grad[i] * guard[0] + hyper[1] * p;   // clipped gradient, then L2 (torch order)
    param[i] = p - hyper[0] * g;
}
