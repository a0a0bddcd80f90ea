// One element of Adam / AdamW, like torch.optim.Adam's single-tensor step (foreach=False).
// The host folds everything that depends on the step number t into the hyper buffer
// (computed in double, like PyTorch's Python floats, then rounded to float32):
//   hyper = [neg_step_size, bias_correction2_sqrt, eps, 1 - beta1, beta2, 1 - beta2, l2, decay]
//   neg_step_size = -lr / (1 - beta1^t), bias_correction2_sqrt = sqrt(1 - beta2^t),
//   l2 = weight_decay for Adam (0 for AdamW), decay = 1 - lr * weight_decay for AdamW (1 for Adam).
// Returns the new parameter; writes the moments. `vmax` is the AMSGrad running max (ignored otherwise).

float adam_element(const float p_in, const float grad_in, inout float m, inout float v, inout float vmax,
                   const bool amsgrad) {
    const float neg_step_size = hyper[0], bc2_sqrt = hyper[1], eps = hyper[2], w1 = hyper[3];
    const float beta2 = hyper[4], one_minus_beta2 = hyper[5], l2 = hyper[6], decay = hyper[7];
    const float p = p_in * decay;              // AdamW: param.mul_(1 - lr * weight_decay); exact for decay 1
    const float g = grad_in + l2 * p;          // Adam: grad.add(param, alpha=weight_decay); exact for l2 0
    // exp_avg.lerp_(grad, 1 - beta1), with PyTorch's two lerp forms
    m = abs(w1) < 0.5 ? m + w1 * (g - m) : g - (g - m) * (1.0 - w1);
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    v = v * beta2 + one_minus_beta2 * g * g;
    float second = v;
    if (amsgrad) {
        vmax = max(vmax, v);
        second = vmax;
    }
    const float denom = sqrt(second) / bc2_sqrt + eps;
    // param.addcdiv_(exp_avg, denom, value=-step_size)
    return p + neg_step_size * m / denom;
}
