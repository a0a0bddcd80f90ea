#version 450
#extension GL_GOOGLE_include_directive : require
// y = x * Phi(x), Phi the standard normal CDF 0.5 * (1 + erf(x / sqrt 2))        (approximate='none')
// y = 0.5 * x * (1 + tanh(u)), u = sqrt(2 / pi) * (x + 0.044715 x^3)              (approximate='tanh')
// The tanh form is evaluated as x * sigmoid(2u), the same function without the cancellation in
// 1 + tanh(u) for negative x. Both give -0 for large negative x, like PyTorch. On quads
// (common/unary_quads.glsl).
#include "../common/unary_quads.glsl"
#include "../common/erf.glsl"

#include "gelu.glsl"

float gelu(float v) {
    if (TANH_APPROXIMATION) {
        const float u = SQRT_2_OVER_PI * (v * (1.0 + KAPPA * (v * v)));
        return v * vkb_sigmoid(2.0 * u);
    }
    return v * vkb_normal_cdf(v);
}

vec4 forward_quad(vec4 v, uint first) {
    return MAP4(gelu, v);
}
