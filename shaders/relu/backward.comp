#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy where the output was positive, else 0 (the derivative at 0 is taken as 0, like PyTorch).
// Uses the saved output y: y > 0 exactly where x > 0. On quads (common/unary_backward_quads.glsl).
#include "../common/unary_backward_quads.glsl"

vec4 backward_quad(vec4 y, vec4 g) {
    return mix(vec4(0.0), g, greaterThan(y, vec4(0.0)));   // a per-component select
}
