#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// Batch statistics per channel: mean[c] and the biased variance[c] of the channel's VALUES
// (= batch * SPATIAL) values. One workgroup per channel; each invocation sums a strided slice, then
// a fixed tree in shared memory (deterministic). Two passes, the variance from the squared
// deviations (no cancellation of E[x^2] - E[x]^2).
// Loop iterations per invocation: 2 strided passes and 2 trees (layers/norm.py, workgroup_loop_iterations).
// Where SPATIAL % 4 == 0 the passes read quads (x4), REDUCE_RUN in a row (channel.glsl): a
// channel's values come in runs of whole quads.

layout(constant_id = 0) const uint CHANNELS = 1;
layout(constant_id = 1) const uint SPATIAL = 1;
layout(constant_id = 2) const uint VALUES = 1;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Mean { float mean[]; };
layout(set = 0, binding = 2) writeonly buffer Variance { float variance[]; };
VEC4_INPUT(3, X4, x4);   // x as whole quads (texels where the device prefers them)

#define REDUCE_SIZE 256
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"
#include "channel.glsl"
#include "../common/quad_sum.glsl"

void main() {
    const uint c = workgroup_channel();
    if (c >= CHANNELS) return;   // a whole workgroup: no barrier is left waiting
    const uint t = gl_LocalInvocationIndex;
    float partial = 0.0;
    if (SPATIAL % 4 == 0) {   // a specialization constant: one branch is compiled
        vec4 quads = vec4(0.0);
        for (uint k4 = t * REDUCE_RUN; k4 < VALUES / 4; k4 += REDUCE_SIZE * REDUCE_RUN) {
            const uint run = channel_value(c, 4 * k4) / 4;
            for (uint r = 0; r < REDUCE_RUN; ++r) quads += LOAD4(x4, run + r);
        }
        partial = quad_sum(quads);
    } else {
        for (uint k = t; k < VALUES; k += REDUCE_SIZE) partial += x[channel_value(c, k)];
    }
    const float m = workgroup_sum(partial) / float(VALUES);
    partial = 0.0;
    if (SPATIAL % 4 == 0) {
        vec4 quads = vec4(0.0);
        for (uint k4 = t * REDUCE_RUN; k4 < VALUES / 4; k4 += REDUCE_SIZE * REDUCE_RUN) {
            const uint run = channel_value(c, 4 * k4) / 4;
            for (uint r = 0; r < REDUCE_RUN; ++r) {
                const vec4 d = LOAD4(x4, run + r) - m;
                quads += d * d;
            }
        }
        partial = quad_sum(quads);
    } else {
        for (uint k = t; k < VALUES; k += REDUCE_SIZE) {
            const float d = x[channel_value(c, k)] - m;
            partial += d * d;
        }
    }
    barrier();   // every invocation has read the first sum before the scratch is reused
    const float v = workgroup_sum(partial) / float(VALUES);
    if (t == 0) {
        mean[c] = m;
        variance[c] = v;
    }
}
