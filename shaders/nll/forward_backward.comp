#version 450
#extension GL_GOOGLE_include_directive : require
// Negative log-likelihood of integer labels given log-probabilities (PyTorch's nll_loss, no class
// weights) and its gradient:
//   loss  = -sum_b logp[b, label[b]] / (REDUCTION == 0 ? B : 1)       (0: 'mean', 1: 'sum')
//   dlogp = -dloss / (REDUCTION == 0 ? B : 1) * onehot(label[b])
// One workgroup: the gradient is written element by element, the picked entries are summed per
// invocation and then in a fixed order across the workgroup (deterministic).

layout(constant_id = 0) const uint B = 1;          // batch
layout(constant_id = 1) const uint C = 1;          // classes
layout(constant_id = 2) const uint REDUCTION = 0;  // 0: mean over the batch, 1: sum

layout(set = 0, binding = 0) readonly buffer LogP { float logp[]; };
layout(set = 0, binding = 1) readonly buffer Labels { int labels[]; };
layout(set = 0, binding = 2) readonly buffer DLoss { float dloss[]; };
layout(set = 0, binding = 3) writeonly buffer Loss { float loss[]; };
layout(set = 0, binding = 4) writeonly buffer DLogP { float dlogp[]; };

#define REDUCE_SIZE 256
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"

uint label_of(uint b) { return uint(clamp(labels[b], 0, int(C) - 1)); }  // labels are checked on the host

void main() {
    const float divisor = REDUCTION == 0 ? float(B) : 1.0;
    const float picked_grad = -dloss[0] / divisor;
    for (uint i = gl_LocalInvocationIndex; i < B * C; i += REDUCE_SIZE) {
        const uint b = i / C;
        dlogp[i] = (i - b * C) == label_of(b) ? picked_grad : 0.0;
    }
    float partial = 0.0;
    for (uint b = gl_LocalInvocationIndex; b < B; b += REDUCE_SIZE) partial += logp[b * C + label_of(b)];
    const float total = workgroup_sum(partial);
    if (gl_LocalInvocationIndex == 0) loss[0] = -total / divisor;
}
