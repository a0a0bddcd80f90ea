#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy * gelu'(x) from the saved input x:
//   approximate='none': gelu'(x) = Phi(x) + x * phi(x), phi the standard normal PDF
//   approximate='tanh': with s = sigmoid(2u) = 0.5 * (1 + tanh(u)), u as in forward,
//                       gelu'(x) = s + 2x * s (1 - s) * sqrt(2 / pi) * (1 + 3 * 0.044715 x^2)
// (1 - tanh(u)^2 = 4 s (1 - s), computed without cancellation.) On quads
// (common/unary_backward_quads.glsl).
#include "../common/unary_backward_quads.glsl"
#include "../common/erf.glsl"

#include "gelu.glsl"

float gelu_slope(float v) {
    if (TANH_APPROXIMATION) {
        const float w = v * v;
        const float u2 = 2.0 * (SQRT_2_OVER_PI * (v * (1.0 + KAPPA * w)));
        const float g = vkb_sigmoid_slope(u2);
        // g == 0 once |u2| > ~87, i.e. |x| > ~8.5: skip the term, whose factor x^3 could overflow.
        const float tail = g == 0.0 ? 0.0 : (2.0 * v) * g * (SQRT_2_OVER_PI * (1.0 + (3.0 * KAPPA) * w));
        return vkb_sigmoid(u2) + tail;
    }
    return vkb_normal_cdf(v) + v * vkb_normal_pdf(v);
}

vec4 backward_quad(vec4 x, vec4 g) {
    return g * MAP4(gelu_slope, x);
}
