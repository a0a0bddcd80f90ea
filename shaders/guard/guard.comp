#version 450
// The step's guard, read by every optimizer update shader:
//   guard = [coef, total_norm, bad, first bad parameter + 1 (0: none, only the loss)]
// grad_stats holds PARTS partial gradient sums of squares per parameter (parameter order, see
// guard/sum_squares.comp), then PARTS partial sums per loss (all but one 0). total_norm =
// sqrt(sum of the squares, in parameter then part order); the clip coefficient is
// torch.nn.utils.clip_grad_norm_'s min(MAX_NORM / (total_norm + 1e-6), 1) with CLIP, else 1.
// bad = 1 when total_norm or a loss is NaN or Inf: the updates then write nothing.

layout(constant_id = 0) const uint NPARAMS = 0;
layout(constant_id = 1) const uint NLOSSES = 1;
layout(constant_id = 2) const bool CLIP = false;
layout(constant_id = 3) const float MAX_NORM = 1.0;
layout(constant_id = 4) const uint PARTS = 1;

layout(set = 0, binding = 0) readonly buffer GradStats { float grad_stats[]; };
layout(set = 0, binding = 1) writeonly buffer Guard { float guard[]; };

layout(local_size_x = 1) in;

bool finite(const float x) { return !(isnan(x) || isinf(x)); }

void main() {
    float sum = 0.0;
    uint first_bad = 0;
    bool loss_bad = false;
    for (uint p = 0; p < NPARAMS; ++p) {
        float s = 0.0;
        for (uint j = 0; j < PARTS; ++j) s += grad_stats[p * PARTS + j];
        sum += s;
        if (first_bad == 0 && !finite(s)) first_bad = p + 1;
    }
    for (uint l = 0; l < NLOSSES; ++l) {
        float s = 0.0;
        for (uint j = 0; j < PARTS; ++j) s += grad_stats[(NPARAMS + l) * PARTS + j];
        if (!finite(s)) loss_bad = true;
    }
    const float total_norm = sqrt(sum);
    const bool bad = loss_bad || first_bad != 0 || !finite(total_norm);
    float coef = 1.0;
    if (CLIP && !bad) coef = min(MAX_NORM / (total_norm + 1e-6), 1.0);
    guard[0] = coef;
    guard[1] = total_norm;
    guard[2] = bad ? 1.0 : 0.0;
    guard[3] = float(first_bad);
}
