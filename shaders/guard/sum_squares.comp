#version 450
#extension GL_GOOGLE_include_directive : require
// One slot of the gradient statistics: grad_stats[SLOT] = sum of values[i]^2 (a parameter's
// gradient, for the global norm) or, with SQUARE false, sum of values[i] (a loss, checked for
// NaN/Inf by guard/guard.comp). One workgroup, fixed-order reduction (deterministic).

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const uint SLOT = 0;
layout(constant_id = 2) const bool SQUARE = true;

layout(set = 0, binding = 0) readonly buffer Values { float values[]; };
layout(set = 0, binding = 1) writeonly buffer GradStats { float grad_stats[]; };

#define REDUCE_SIZE 256
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"

void main() {
    float partial = 0.0;
    for (uint i = gl_LocalInvocationIndex; i < NUMEL; i += REDUCE_SIZE) {
        const float v = values[i];
        partial += SQUARE ? v * v : v;
    }
    const float total = workgroup_sum(partial);
    if (gl_LocalInvocationIndex == 0) grad_stats[SLOT] = total;
}
