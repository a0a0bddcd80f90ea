#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// SGD without momentum, like torch.optim.SGD: g = grad + weight_decay * param; param -= lr * g.
// The hyper-parameters are read from a small device buffer written with each batch, so changing
// them never re-records the step. With weight_decay 0, g is grad exactly.
// Works on quads of 4 elements (see common/vec4_index.glsl); each is computed as a float would be.

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer Hyper { float hyper[]; };  // [lr, weight_decay, momentum, 1 - dampening, first]
layout(set = 0, binding = 1) readonly buffer Grad { float grad[]; };
layout(set = 0, binding = 2) buffer Param { float param[]; };
layout(set = 0, binding = 3) readonly buffer Guard { float guard[]; };  // [clip coef, total norm, bad, first bad + 1] (guard/guard.comp)
VEC4_INPUT(4, Grad4, grad4);   // grad and param as whole quads
layout(set = 0, binding = 5) buffer Param4 { vec4 param4[]; };

layout(local_size_x = 64) in;
#include "../common/vec4_index.glsl"

// Hyper-parameters are read once, before the loop (the buffers may alias, so the compiler would reload them).
vec4 sgd(const vec4 p, const vec4 grad_in, const float lr, const float weight_decay, const float coef) {
    const vec4 g = grad_in * coef + weight_decay * p;   // clipped gradient, then L2 (torch order)
    return p - lr * g;
}

void main() {
    if (guard[2] != 0.0) return;   // a non-finite step writes nothing
    const float lr = hyper[0], weight_decay = hyper[1], coef = guard[0];
    const uint stride = grid_invocations();
    uint q = flat_index();
    for (; q < QUADS; q += stride) {
        param4[q] = sgd(param4[q], LOAD4(grad4, q), lr, weight_decay, coef);
    }
    if (q == QUADS) for (uint i = 4 * q; i < NUMEL; ++i) {   // the tail
        param[i] = sgd(vec4(param[i]), vec4(grad[i]), lr, weight_decay, coef).x;
    }
}
