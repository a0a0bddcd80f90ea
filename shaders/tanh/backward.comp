#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy * (1 - y * y) from the saved output y, as PyTorch's tanh_backward. On quads (common/unary_backward_quads.glsl).
#include "../common/unary_backward_quads.glsl"

vec4 backward_quad(vec4 t, vec4 g) {
    return g * (1.0 - t * t);
}
