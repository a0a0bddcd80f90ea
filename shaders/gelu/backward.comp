#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy * gelu'(x) from the saved input x:
//   approximate='none': gelu'(x) = Phi(x) + x * phi(x), phi the standard normal PDF
//   approximate='tanh': with s = sigmoid(2u) = 0.5 * (1 + tanh(u)), u as in forward,
//                       gelu'(x) = s + 2x * s (1 - s) * sqrt(2 / pi) * (1 + 3 * 0.044715 x^2)
// (1 - tanh(u)^2 = 4 s (1 - s), computed without cancellation.)

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const bool TANH_APPROXIMATION = false;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"
#include "../common/erf.glsl"

const float SQRT_2_OVER_PI = 0.7978845608028654;
const float KAPPA = 0.044715;

void main() {
    const uint i = flat_index();
    if (i < NUMEL) {
        const float v = x[i];
        float slope;
        if (TANH_APPROXIMATION) {
            const float w = v * v;
            const float u2 = 2.0 * (SQRT_2_OVER_PI * (v * (1.0 + KAPPA * w)));
            const float g = vkb_sigmoid_slope(u2);
            // g == 0 once |u2| > ~87, i.e. |x| > ~8.5: skip the term, whose factor x^3 could overflow.
            const float tail = g == 0.0 ? 0.0 : (2.0 * v) * g * (SQRT_2_OVER_PI * (1.0 + (3.0 * KAPPA) * w));
            slope = vkb_sigmoid(u2) + tail;
        } else {
            slope = vkb_normal_cdf(v) + v * vkb_normal_pdf(v);
        }
        dx[i] = dy[i] * slope;
    }
}
