#version 450
#extension GL_GOOGLE_include_directive : require
// SGD with momentum, like torch.optim.SGD (single-tensor):
//   g = grad + weight_decay * param
//   buf = g                                        on the first step (torch's clone of the gradient)
//   buf = momentum * buf + (1 - dampening) * g     afterwards
//   g = g + momentum * buf  (nesterov)  or  g = buf
//   param -= lr * g
// Hyper-parameters come from the per-batch hyper buffer; `first` is 1 on the plan's first step.

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const bool NESTEROV = false;

layout(set = 0, binding = 0) readonly buffer Hyper { float hyper[]; };  // [lr, weight_decay, momentum, 1 - dampening, first]
layout(set = 0, binding = 1) readonly buffer Grad { float grad[]; };
layout(set = 0, binding = 2) buffer Param { float param[]; };
layout(set = 0, binding = 3) buffer MomentumBuffer { float momentum_buffer[]; };

layout(set = 0, binding = 4) readonly buffer Guard { float guard[]; };  // [clip coef, total norm, bad, first bad + 1] (guard/guard.comp)
layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i >= NUMEL || guard[2] != 0.0) return;   // a non-finite step writes nothing
    const float lr = hyper[0], weight_decay = hyper[1], momentum = hyper[2], keep = hyper[3];
    const bool first = hyper[4] != 0.0;
    const float p = param[i];
    float g = grad[i] * guard[0] + weight_decay * p;   // clipped gradient, then L2 (torch order)
    // A select, not arithmetic, on the first step: whatever the buffer held never reaches the result.
    const float buf = first ? g : momentum_buffer[i] * momentum + keep * g;
    momentum_buffer[i] = buf;
    g = NESTEROV ? g + momentum * buf : buf;
    param[i] = p - lr * g;
}
