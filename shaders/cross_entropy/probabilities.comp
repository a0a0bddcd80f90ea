#version 450
#extension GL_GOOGLE_include_directive : require
// Fused softmax + cross entropy with class-probability targets (PyTorch's cross_entropy with a
// float (B, C) target), label smoothing, and its gradient. With eps = SMOOTHING the target row is
// q = (1 - eps) * target[b] + eps / C, and with d_c = max(logits[b]) - logits[b, c] >= 0,
// lse = log(sum_c exp(-d_c)), log softmax_c = -d_c - lse:
//   row loss = -sum_c q_c log softmax_c = sum_c q_c d_c + (sum_c q_c) lse
//   loss     = sum_b row loss / (REDUCTION == 0 ? B : 1)          (0: 'mean', 1: 'sum')
//   dlogits  = dloss / (REDUCTION == 0 ? B : 1) * (softmax(logits[b]) * sum_c q_c - q)
// (sum_c q_c is 1 for a distribution; the exact expression keeps the gradient that of the loss.)
// One workgroup, rows spread over its invocations, fixed-order sum (deterministic), stable.

layout(constant_id = 0) const uint B = 1;             // batch
layout(constant_id = 1) const uint C = 1;             // classes
layout(constant_id = 2) const uint REDUCTION = 0;     // 0: mean over the batch, 1: sum
layout(constant_id = 3) const float SMOOTHING = 0.0;  // label smoothing eps in [0, 1]

layout(set = 0, binding = 0) readonly buffer Logits { float logits[]; };
layout(set = 0, binding = 1) readonly buffer Target { float target[]; };
layout(set = 0, binding = 2) readonly buffer DLoss { float dloss[]; };
layout(set = 0, binding = 3) writeonly buffer Loss { float loss[]; };
layout(set = 0, binding = 4) writeonly buffer DLogits { float dlogits[]; };

#define REDUCE_SIZE 256
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"

void main() {
    const float divisor = REDUCTION == 0 ? float(B) : 1.0;
    const float scale = dloss[0] / divisor;
    const float keep = 1.0 - SMOOTHING;
    const float spread = SMOOTHING / float(C);
    float row_sum = 0.0;
    for (uint b = gl_LocalInvocationIndex; b < B; b += REDUCE_SIZE) {
        const uint row = b * C;
        float peak = logits[row];
        for (uint c = 1; c < C; ++c) peak = max(peak, logits[row + c]);
        float total = 0.0, mass = 0.0, weighted = 0.0;
        for (uint c = 0; c < C; ++c) {
            const float d = peak - logits[row + c];
            const float q = keep * target[row + c] + spread;
            total += exp(-d);
            mass += q;
            weighted += q * d;
        }
        row_sum += weighted + mass * log(total);
        const float inv_total = mass / total;
        for (uint c = 0; c < C; ++c)
            dlogits[row + c] = scale * (exp(logits[row + c] - peak) * inv_total - (keep * target[row + c] + spread));
    }
    const float total_loss = workgroup_sum(row_sum);
    if (gl_LocalInvocationIndex == 0) loss[0] = total_loss / divisor;
}
