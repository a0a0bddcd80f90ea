#version 450
#extension GL_GOOGLE_include_directive : require
// y = 1 / (1 + exp(-x)), from exp(-|x|) so nothing overflows: exactly 0 / 1 far out. On quads
// (common/unary_quads.glsl).
#include "../common/unary_quads.glsl"
#include "../common/erf.glsl"

vec4 forward_quad(vec4 v, uint first) {
    return MAP4(vkb_sigmoid, v);
}
