#version 450
#extension GL_GOOGLE_include_directive : require
// PARTS slots of the gradient statistics: grad_stats[SLOT + part] = sum of values[i]^2 (a
// parameter's gradient, for the global norm) or, with SQUARE false, sum of values[i] (a loss,
// checked for NaN/Inf by guard/guard.comp) over the part-th of PARTS contiguous chunks of values.
// One workgroup per part, each a fixed-order reduction (deterministic); guard/guard.comp adds the
// parts in order. Several parts let a large gradient use every core (on lavapipe one workgroup
// runs on one CPU thread).

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const uint SLOT = 0;
layout(constant_id = 2) const bool SQUARE = true;
layout(constant_id = 3) const uint PARTS = 1;

layout(set = 0, binding = 0) readonly buffer Values { float values[]; };
layout(set = 0, binding = 1) writeonly buffer GradStats { float grad_stats[]; };

#define REDUCE_SIZE 64
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"

void main() {
    const uint part = gl_WorkGroupID.x;
    const uint chunk = (NUMEL + PARTS - 1) / PARTS;
    const uint end = min((part + 1) * chunk, NUMEL);
    float partial = 0.0;
    for (uint i = part * chunk + gl_LocalInvocationIndex; i < end; i += REDUCE_SIZE) {
        const float v = values[i];
        partial += SQUARE ? v * v : v;
    }
    const float total = workgroup_sum(partial);
    if (gl_LocalInvocationIndex == 0) grad_stats[SLOT + part] = total;
}
