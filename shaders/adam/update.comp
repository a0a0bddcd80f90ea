#version 450
#extension GL_GOOGLE_include_directive : require
// Adam / AdamW (see adam.glsl); the moments live in device-only buffers zeroed when the plan is made.

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer Hyper { float hyper[]; };
layout(set = 0, binding = 1) readonly buffer Grad { float grad[]; };
layout(set = 0, binding = 2) buffer Param { float param[]; };
layout(set = 0, binding = 3) buffer ExpAvg { float exp_avg[]; };
layout(set = 0, binding = 4) buffer ExpAvgSq { float exp_avg_sq[]; };

layout(set = 0, binding = 5) readonly buffer Guard { float guard[]; };  // [clip coef, total norm, bad, first bad + 1] (guard/guard.comp)
layout(local_size_x = 256) in;
#include "../common/index.glsl"
#include "adam.glsl"

void main() {
    const uint i = flat_index();
    if (i >= NUMEL || guard[2] != 0.0) return;   // a non-finite step writes nothing
    float m = exp_avg[i], v = exp_avg_sq[i], unused = 0.0;
    param[i] = adam_element(param[i], grad[i] * guard[0], m, v, unused, false);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
}
