#version 450
#extension GL_GOOGLE_include_directive : require
// Fused softmax + negative log-likelihood with integer labels, mean over the batch, and its gradient:
//   loss     = mean_b ( logsumexp(logits[b]) - logits[b, label[b]] )
//   dlogits  = dloss / B * ( softmax(logits[b]) - onehot(label[b]) )
// The loss is the base case of backprop: it is handed dL/dloss (dloss, 1 in training) and
// returns dL/dlogits. One workgroup; rows are spread over its invocations and the loss is summed
// in a fixed order (deterministic). logsumexp subtracts the row maximum first (stable).

layout(constant_id = 0) const uint B = 1;  // batch
layout(constant_id = 1) const uint C = 1;  // classes

layout(set = 0, binding = 0) readonly buffer Logits { float logits[]; };
layout(set = 0, binding = 1) readonly buffer Labels { int labels[]; };
layout(set = 0, binding = 2) readonly buffer DLoss { float dloss[]; };
layout(set = 0, binding = 3) writeonly buffer Loss { float loss[]; };
layout(set = 0, binding = 4) writeonly buffer DLogits { float dlogits[]; };

#define REDUCE_SIZE 256
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"

void main() {
    const float scale = dloss[0] / float(B);
    float row_sum = 0.0;
    for (uint b = gl_LocalInvocationIndex; b < B; b += REDUCE_SIZE) {
        const uint row = b * C;
        float peak = logits[row];
        for (uint c = 1; c < C; ++c) peak = max(peak, logits[row + c]);
        float total = 0.0;
        for (uint c = 0; c < C; ++c) total += exp(logits[row + c] - peak);
        // Everything relative to the row maximum: with logits near 1000, logsumexp itself would be
        // rounded to fp32's 6e-5 spacing there, and that error would show in every probability.
        const uint label = uint(clamp(labels[b], 0, int(C) - 1));  // labels are checked on the host
        row_sum += (peak - logits[row + label]) + log(total);
        const float inv_total = 1.0 / total;
        for (uint c = 0; c < C; ++c)
            dlogits[row + c] = scale * (exp(logits[row + c] - peak) * inv_total - (c == label ? 1.0 : 0.0));
    }
    const float total_loss = workgroup_sum(row_sum);
    if (gl_LocalInvocationIndex == 0) loss[0] = total_loss / float(B);
}
