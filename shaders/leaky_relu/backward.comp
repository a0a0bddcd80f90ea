#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy where x > 0, else NEGATIVE_SLOPE * dy: the derivative at exactly 0 is NEGATIVE_SLOPE, as
// in PyTorch. Uses the saved input x (with a negative slope below 0 the sign of y does not tell).
// On quads (common/unary_backward_quads.glsl).
#include "../common/unary_backward_quads.glsl"

layout(constant_id = 1) const float NEGATIVE_SLOPE = 0.01;

vec4 backward_quad(vec4 x, vec4 g) {
    return mix(g * NEGATIVE_SLOPE, g, greaterThan(x, vec4(0.0)));
}
