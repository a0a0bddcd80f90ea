#version 450
#extension GL_GOOGLE_include_directive : require
// y = max(x, 0), on quads (common/unary_quads.glsl).
#include "../common/unary_quads.glsl"

vec4 forward_quad(vec4 v, uint first) {
    return max(v, 0.0);
}
