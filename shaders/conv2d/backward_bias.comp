#version 450
#extension GL_GOOGLE_include_directive : require
// dbias[o] = sum over (b, oh, ow) of dy[b, o, oh, ow]: a reduction of BATCH * OUT_PLANE terms per
// channel, split into slices of SLICE_TERMS. Workgroup (o, s) sums slice s: each invocation a strided
// part in a fixed order, then a fixed tree (deterministic), into dbias[s * OUT_C + o] (the gradient
// itself with one slice, else partial sums that sum_slices.comp adds).

#include "geometry.glsl"
layout(constant_id = 16) const uint SLICE_TERMS = 1;

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) writeonly buffer DBias { float dbias[]; };

#define REDUCE_SIZE 256
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"

void main() {
    const uint o = gl_WorkGroupID.x;
    const uint first = gl_WorkGroupID.y * SLICE_TERMS;
    const uint last = min(first + SLICE_TERMS, BATCH * OUT_PLANE);
    float partial = 0.0;
    for (uint i = first + gl_LocalInvocationIndex; i < last; i += REDUCE_SIZE) {
        const uvec2 sample_position = split_index(i, OUT_PLANE);
        partial += dy[(sample_position.x * OUT_C + o) * OUT_PLANE + sample_position.y];
    }
    const float total = workgroup_sum(partial);
    if (gl_LocalInvocationIndex == 0) dbias[gl_WorkGroupID.y * OUT_C + o] = total;
}
