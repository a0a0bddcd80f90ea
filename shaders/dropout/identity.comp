#version 450
#extension GL_GOOGLE_include_directive : require
// y = x: Dropout in eval mode or with p = 0 (forward and backward). On quads
// (common/unary_quads.glsl).
#include "../common/unary_quads.glsl"

vec4 forward_quad(vec4 v, uint first) {
    return v;
}
