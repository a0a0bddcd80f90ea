#version 450
#extension GL_GOOGLE_include_directive : require
// y = tanh(x), computed from exp(-2|x|) (never inf / inf, so no NaN for huge |x|; saturates to
// exactly +-1) and a polynomial near 0; not the driver's tanh. On quads (common/unary_quads.glsl).
#include "../common/unary_quads.glsl"
#include "../common/erf.glsl"

vec4 forward_quad(vec4 v, uint first) {
    return MAP4(vkb_tanh, v);
}
