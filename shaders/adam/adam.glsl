// Adam / AdamW, like torch.optim.Adam's single-tensor step (foreach=False), four elements at a time;
// each component is computed exactly as a float would be (the tails use .x alone).
// The host folds everything that depends on the step number t into the hyper buffer
// (computed in double, like PyTorch's Python floats, then rounded to float32):
//   hyper = [neg_step_size, bias_correction2_sqrt, eps, 1 - beta1, beta2, 1 - beta2, l2, decay]
//   neg_step_size = -lr / (1 - beta1^t), bias_correction2_sqrt = sqrt(1 - beta2^t),
//   l2 = weight_decay for Adam (0 for AdamW), decay = 1 - lr * weight_decay for AdamW (1 for Adam).

struct AdamHyper { float neg_step_size, bc2_sqrt, eps, w1, beta2, one_minus_beta2, l2, decay; };

// Read once, before the loop over quads (the buffers may alias, so the compiler would reload them).
AdamHyper read_hyper() {
    return AdamHyper(hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5], hyper[6], hyper[7]);
}

// Returns the new parameters; writes the moments. `vmax` is the AMSGrad running max (ignored otherwise).
vec4 adam_quad(const vec4 p_in, const vec4 grad_in, inout vec4 m, inout vec4 v, inout vec4 vmax,
               const bool amsgrad, const AdamHyper h) {
    const vec4 p = p_in * h.decay;             // AdamW: param.mul_(1 - lr * weight_decay); exact for decay 1
    const vec4 g = grad_in + h.l2 * p;         // Adam: grad.add(param, alpha=weight_decay); exact for l2 0
    // exp_avg.lerp_(grad, 1 - beta1), with PyTorch's two lerp forms
    m = abs(h.w1) < 0.5 ? m + h.w1 * (g - m) : g - (g - m) * (1.0 - h.w1);
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    v = v * h.beta2 + h.one_minus_beta2 * g * g;
    vec4 second = v;
    if (amsgrad) {
        vmax = max(vmax, v);
        second = vmax;
    }
    const vec4 denom = sqrt(second) / h.bc2_sqrt + h.eps;
    // param.addcdiv_(exp_avg, denom, value=-step_size)
    return p + h.neg_step_size * m / denom;
}
