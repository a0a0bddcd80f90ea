#version 450
#extension GL_GOOGLE_include_directive : require
// Fused softmax + negative log-likelihood with integer labels and label smoothing (PyTorch's
// cross_entropy with class-index targets), and its gradient. With eps = SMOOTHING the target row is
// q = (1 - eps) * onehot(label) + eps / C, and with d_c = max(logits[b]) - logits[b, c] >= 0,
// lse = log(sum_c exp(-d_c)):
//   row loss = -sum_c q_c log softmax_c = (1 - eps) * d_label + eps / C * sum_c d_c + lse
//   loss     = sum_b row loss / (REDUCTION == 0 ? B : 1)          (0: 'mean', 1: 'sum')
//   dlogits  = dloss / (REDUCTION == 0 ? B : 1) * (softmax(logits[b]) - q)
// The loss is the base case of backprop: it is handed dL/dloss (dloss, 1 in training) and
// returns dL/dlogits. One workgroup; rows are spread over its invocations and the loss is summed
// in a fixed order (deterministic). Everything is relative to the row maximum (stable): every d_c
// is non-negative, so nothing cancels even for logits of +-1e4.

layout(constant_id = 0) const uint B = 1;             // batch
layout(constant_id = 1) const uint C = 1;             // classes
layout(constant_id = 2) const uint REDUCTION = 0;     // 0: mean over the batch, 1: sum
layout(constant_id = 3) const float SMOOTHING = 0.0;  // label smoothing eps in [0, 1]

layout(set = 0, binding = 0) readonly buffer Logits { float logits[]; };
layout(set = 0, binding = 1) readonly buffer Labels { int labels[]; };
layout(set = 0, binding = 2) readonly buffer DLoss { float dloss[]; };
layout(set = 0, binding = 3) writeonly buffer Loss { float loss[]; };
layout(set = 0, binding = 4) writeonly buffer DLogits { float dlogits[]; };

#define REDUCE_SIZE 256
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"

void main() {
    const float divisor = REDUCTION == 0 ? float(B) : 1.0;
    const float scale = dloss[0] / divisor;
    const float off_target = SMOOTHING / float(C);   // q_c for c != label
    const float on_target = 1.0 - SMOOTHING + off_target;
    float row_sum = 0.0;
    for (uint b = gl_LocalInvocationIndex; b < B; b += REDUCE_SIZE) {
        const uint row = b * C;
        float peak = logits[row];
        for (uint c = 1; c < C; ++c) peak = max(peak, logits[row + c]);
        float total = 0.0, distance = 0.0;
        for (uint c = 0; c < C; ++c) {
            const float d = peak - logits[row + c];
            total += exp(-d);
            distance += d;
        }
        // Everything relative to the row maximum: with logits near 1000, logsumexp itself would be
        // rounded to fp32's 6e-5 spacing there, and that error would show in every probability.
        const uint label = uint(clamp(labels[b], 0, int(C) - 1));  // labels are checked on the host
        row_sum += (1.0 - SMOOTHING) * (peak - logits[row + label]) + off_target * distance + log(total);
        const float inv_total = 1.0 / total;
        for (uint c = 0; c < C; ++c)
            dlogits[row + c] = scale * (exp(logits[row + c] - peak) * inv_total - (c == label ? on_target : off_target));
    }
    const float total_loss = workgroup_sum(row_sum);
    if (gl_LocalInvocationIndex == 0) loss[0] = total_loss / divisor;
}
