#version 450
#extension GL_GOOGLE_include_directive : require
// y = x if x > 0 else NEGATIVE_SLOPE * x   (torch.nn.LeakyReLU; -0 stays -0), on quads
// (common/unary_quads.glsl).
#include "../common/unary_quads.glsl"

layout(constant_id = 1) const float NEGATIVE_SLOPE = 0.01;

vec4 forward_quad(vec4 v, uint first) {
    return mix(v * NEGATIVE_SLOPE, v, greaterThan(v, vec4(0.0)));
}
