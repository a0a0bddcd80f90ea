#version 450
#extension GL_GOOGLE_include_directive : require
// Binary cross entropy on logits x with float targets t (PyTorch's binary_cross_entropy_with_logits,
// no weights) and its gradient, in the numerically stable form (never overflows, no cancellation
// in the tails):
//   pointwise = max(x, 0) - x t + log1p(exp(-|x|))
//   loss      = sum pointwise / (REDUCTION == 0 ? NUMEL : 1)        (0: 'mean', 1: 'sum')
//   dpred     = dloss / (REDUCTION == 0 ? NUMEL : 1) * (sigmoid(x) - t)
// One workgroup, fixed-order reduction (deterministic).

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const uint REDUCTION = 0;  // 0: mean over all elements, 1: sum

layout(set = 0, binding = 0) readonly buffer Pred { float pred[]; };
layout(set = 0, binding = 1) readonly buffer Target { float target[]; };
layout(set = 0, binding = 2) readonly buffer DLoss { float dloss[]; };
layout(set = 0, binding = 3) writeonly buffer Loss { float loss[]; };
layout(set = 0, binding = 4) writeonly buffer DPred { float dpred[]; };

#define REDUCE_SIZE 256
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"

// log(1 + u) for u in [0, 1], accurate to a few ulp relative even for tiny u (GLSL has no log1p,
// and log(1.0 + u) loses everything below fp32's epsilon): log1p(u) = 2 atanh(s), s = u / (2 + u)
// in [0, 1/3], by its odd series; s^2 <= 1/9 so eight terms reach fp32 precision. Straight-line
// arithmetic: no loop, and no dependence on the device's log precision near 1.
float log1p_unit(float u) {
    const float s = u / (2.0 + u);
    const float s2 = s * s;
    float series = 1.0 / 17.0;
    series = series * s2 + 1.0 / 15.0;
    series = series * s2 + 1.0 / 13.0;
    series = series * s2 + 1.0 / 11.0;
    series = series * s2 + 1.0 / 9.0;
    series = series * s2 + 1.0 / 7.0;
    series = series * s2 + 1.0 / 5.0;
    series = series * s2 + 1.0 / 3.0;
    series = series * s2 + 1.0;
    return 2.0 * s * series;
}

void main() {
    const float divisor = REDUCTION == 0 ? float(NUMEL) : 1.0;
    const float scale = dloss[0] / divisor;
    float partial = 0.0;
    for (uint i = gl_LocalInvocationIndex; i < NUMEL; i += REDUCE_SIZE) {
        const float x = pred[i], t = target[i];
        const float e = exp(-abs(x));                          // in (0, 1]: never overflows
        partial += (max(x, 0.0) - x * t) + log1p_unit(e);
        // sigmoid(x) - t, with sigmoid(x) = 1 - sigmoid(-|x|) for x >= 0 written out so that the
        // gradient stays exact in the tails (1 - e / (1 + e) would round to 1 for x > 17).
        const float tail = e / (1.0 + e);                      // sigmoid(-|x|)
        dpred[i] = scale * (x >= 0.0 ? (1.0 - t) - tail : tail - t);
    }
    const float total = workgroup_sum(partial);
    if (gl_LocalInvocationIndex == 0) loss[0] = total / divisor;
}
