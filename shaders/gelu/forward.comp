#version 450
#extension GL_GOOGLE_include_directive : require
// y = x * Phi(x), Phi the standard normal CDF 0.5 * (1 + erf(x / sqrt 2))        (approximate='none')
// y = 0.5 * x * (1 + tanh(u)), u = sqrt(2 / pi) * (x + 0.044715 x^3)              (approximate='tanh')
// The tanh form is evaluated as x * sigmoid(2u), the same function without the cancellation in
// 1 + tanh(u) for negative x. Both give -0 for large negative x, like PyTorch.

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const bool TANH_APPROXIMATION = false;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"
#include "../common/erf.glsl"

const float SQRT_2_OVER_PI = 0.7978845608028654;
const float KAPPA = 0.044715;

void main() {
    const uint i = flat_index();
    if (i < NUMEL) {
        const float v = x[i];
        if (TANH_APPROXIMATION) {
            const float u = SQRT_2_OVER_PI * (v * (1.0 + KAPPA * (v * v)));
            y[i] = v * vkb_sigmoid(2.0 * u);
        } else {
            y[i] = v * vkb_normal_cdf(v);
        }
    }
}
