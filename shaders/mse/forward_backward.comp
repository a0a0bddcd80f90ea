#version 450
#extension GL_GOOGLE_include_directive : require
// Squared error over all elements and its gradient (PyTorch's mse_loss):
//   loss  = sum((pred - target)^2) / (REDUCTION == 0 ? NUMEL : 1)      (0: 'mean', 1: 'sum')
//   dpred = dloss * 2 * (pred - target) / (REDUCTION == 0 ? NUMEL : 1)
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

void main() {
    const float divisor = REDUCTION == 0 ? float(NUMEL) : 1.0;
    const float scale = 2.0 * dloss[0] / divisor;
    float partial = 0.0;
    for (uint i = gl_LocalInvocationIndex; i < NUMEL; i += REDUCE_SIZE) {
        const float diff = pred[i] - target[i];
        partial += diff * diff;
        dpred[i] = scale * diff;
    }
    const float total = workgroup_sum(partial);
    if (gl_LocalInvocationIndex == 0) loss[0] = total / divisor;
}
