#version 450
#extension GL_GOOGLE_include_directive : require
// Kullback-Leibler divergence of input log-probabilities x from targets t (PyTorch's kl_div) and its
// gradient with respect to x:
//   LOG_TARGET false (t are probabilities):  pointwise = t (log t - x), 0 where t == 0;  d/dx = -t
//   LOG_TARGET true  (t are log-probabilities): pointwise = exp(t) (t - x);              d/dx = -exp(t)
//   loss  = sum pointwise / divisor,  dpred = dloss / divisor * d/dx, with divisor
//           NUMEL ('mean', REDUCTION 0), 1 ('sum', 1) or B ('batchmean', 2).
// One workgroup, fixed-order reduction (deterministic).

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const uint B = 1;                   // rows, the 'batchmean' divisor
layout(constant_id = 2) const uint REDUCTION = 0;           // 0: mean, 1: sum, 2: batchmean
layout(constant_id = 3) const bool LOG_TARGET = false;

layout(set = 0, binding = 0) readonly buffer Pred { float pred[]; };
layout(set = 0, binding = 1) readonly buffer Target { float target[]; };
layout(set = 0, binding = 2) readonly buffer DLoss { float dloss[]; };
layout(set = 0, binding = 3) writeonly buffer Loss { float loss[]; };
layout(set = 0, binding = 4) writeonly buffer DPred { float dpred[]; };

#define REDUCE_SIZE 256
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"

void main() {
    const float divisor = REDUCTION == 0 ? float(NUMEL) : (REDUCTION == 2 ? float(B) : 1.0);
    const float scale = dloss[0] / divisor;
    float partial = 0.0;
    for (uint i = gl_LocalInvocationIndex; i < NUMEL; i += REDUCE_SIZE) {
        const float x = pred[i], t = target[i];
        float weight, pointwise;
        if (LOG_TARGET) {
            weight = exp(t);
            pointwise = weight * (t - x);
        } else {
            weight = t;                                        // checked on the host: t >= 0
            pointwise = t > 0.0 ? t * (log(t) - x) : 0.0;
        }
        partial += pointwise;
        dpred[i] = -scale * weight;
    }
    const float total = workgroup_sum(partial);
    if (gl_LocalInvocationIndex == 0) loss[0] = total / divisor;
}
