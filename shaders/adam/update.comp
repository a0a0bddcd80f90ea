#version 450
#extension GL_GOOGLE_include_directive : require
// Adam / AdamW (see adam.glsl); the moments live in device-only buffers zeroed when the plan is made.
// Works on quads of 4 elements (see common/vec4_index.glsl).

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer Hyper { float hyper[]; };
layout(set = 0, binding = 1) readonly buffer Grad { float grad[]; };
layout(set = 0, binding = 2) buffer Param { float param[]; };
layout(set = 0, binding = 3) buffer ExpAvg { float exp_avg[]; };
layout(set = 0, binding = 4) buffer ExpAvgSq { float exp_avg_sq[]; };
layout(set = 0, binding = 5) readonly buffer Guard { float guard[]; };  // [clip coef, total norm, bad, first bad + 1] (guard/guard.comp)
layout(set = 0, binding = 6) readonly buffer Grad4 { vec4 grad4[]; };   // grad, param and the moments as whole quads
layout(set = 0, binding = 7) buffer Param4 { vec4 param4[]; };
layout(set = 0, binding = 8) buffer ExpAvg4 { vec4 exp_avg4[]; };
layout(set = 0, binding = 9) buffer ExpAvgSq4 { vec4 exp_avg_sq4[]; };

layout(local_size_x = 64) in;
#include "../common/vec4_index.glsl"
#include "adam.glsl"

void main() {
    if (guard[2] != 0.0) return;   // a non-finite step writes nothing
    const AdamHyper h = read_hyper();
    const float coef = guard[0];
    const uint stride = grid_invocations();
    vec4 unused = vec4(0.0);
    uint q = flat_index();
    for (; q < QUADS; q += stride) {
        vec4 m = exp_avg4[q], v = exp_avg_sq4[q];
        param4[q] = adam_quad(param4[q], grad4[q] * coef, m, v, unused, false, h);
        exp_avg4[q] = m;
        exp_avg_sq4[q] = v;
    }
    if (q == QUADS) for (uint i = 4 * q; i < NUMEL; ++i) {   // the tail
        vec4 m = vec4(exp_avg[i]), v = vec4(exp_avg_sq[i]);
        param[i] = adam_quad(vec4(param[i]), vec4(grad[i] * coef), m, v, unused, false, h).x;
        exp_avg[i] = m.x;
        exp_avg_sq[i] = v.x;
    }
}
