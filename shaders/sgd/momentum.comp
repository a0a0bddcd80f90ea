#version 450
#extension GL_GOOGLE_include_directive : require
// SGD with momentum, like torch.optim.SGD (single-tensor):
//   g = grad + weight_decay * param
//   buf = g                                        on the first step (torch's clone of the gradient)
//   buf = momentum * buf + (1 - dampening) * g     afterwards
//   g = g + momentum * buf  (nesterov)  or  g = buf
//   param -= lr * g
// Hyper-parameters come from the per-batch hyper buffer; `first` is 1 on the plan's first step.
// Works on quads of 4 elements (see common/vec4_index.glsl); each is computed as a float would be.

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const bool NESTEROV = false;

layout(set = 0, binding = 0) readonly buffer Hyper { float hyper[]; };  // [lr, weight_decay, momentum, 1 - dampening, first]
layout(set = 0, binding = 1) readonly buffer Grad { float grad[]; };
layout(set = 0, binding = 2) buffer Param { float param[]; };
layout(set = 0, binding = 3) buffer MomentumBuffer { float momentum_buffer[]; };
layout(set = 0, binding = 4) readonly buffer Guard { float guard[]; };  // [clip coef, total norm, bad, first bad + 1] (guard/guard.comp)
layout(set = 0, binding = 5) readonly buffer Grad4 { vec4 grad4[]; };   // grad, param, momentum_buffer as whole quads
layout(set = 0, binding = 6) buffer Param4 { vec4 param4[]; };
layout(set = 0, binding = 7) buffer MomentumBuffer4 { vec4 momentum_buffer4[]; };

layout(local_size_x = 64) in;
#include "../common/vec4_index.glsl"

struct SgdHyper { float lr, weight_decay, momentum, keep, coef; bool first; };

// The new parameters; `buf` is the momentum buffer in and out (its old value is ignored on the first step).
vec4 sgd_momentum(const vec4 p, const vec4 grad_in, inout vec4 buf, const SgdHyper h) {
    vec4 g = grad_in * h.coef + h.weight_decay * p;   // clipped gradient, then L2 (torch order)
    // A select, not arithmetic, on the first step: whatever the buffer held never reaches the result.
    buf = h.first ? g : buf * h.momentum + h.keep * g;
    g = NESTEROV ? g + h.momentum * buf : buf;
    return p - h.lr * g;
}

void main() {
    if (guard[2] != 0.0) return;   // a non-finite step writes nothing
    // Read once, before the loop (the buffers may alias, so the compiler would reload them).
    const SgdHyper h = SgdHyper(hyper[0], hyper[1], hyper[2], hyper[3], guard[0], hyper[4] != 0.0);
    const uint stride = grid_invocations();
    uint q = flat_index();
    for (; q < QUADS; q += stride) {
        vec4 buf = momentum_buffer4[q];
        param4[q] = sgd_momentum(param4[q], grad4[q], buf, h);
        momentum_buffer4[q] = buf;
    }
    if (q == QUADS) for (uint i = 4 * q; i < NUMEL; ++i) {   // the tail
        vec4 buf = vec4(momentum_buffer[i]);
        param[i] = sgd_momentum(vec4(param[i]), vec4(grad[i]), buf, h).x;
        momentum_buffer[i] = buf.x;
    }
}
