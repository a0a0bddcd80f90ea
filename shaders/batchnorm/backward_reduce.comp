#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// Per channel: sum_dy[c] = sum of dy and sum_dy_xhat[c] = sum of dy * xhat, where
// xhat = (x - mean[c]) / sqrt(variance[c] + EPS) over the channel's VALUES (= batch * SPATIAL)
// values. They are dbias and dweight, and the two means backward_input.comp needs for dx.
// One workgroup per channel, strided partial sums then fixed shared-memory trees (deterministic).
// Loop iterations per invocation: 1 strided pass and 2 trees (layers/norm.py, workgroup_loop_iterations).
// Where SPATIAL % 4 == 0 the pass reads quads (x4, dy4), REDUCE_RUN in a row (channel.glsl): a
// channel's values come in runs of whole quads.

layout(constant_id = 0) const uint CHANNELS = 1;
layout(constant_id = 1) const uint SPATIAL = 1;
layout(constant_id = 2) const uint VALUES = 1;
layout(constant_id = 3) const float EPS = 1e-5;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) readonly buffer Mean { float mean[]; };
layout(set = 0, binding = 3) readonly buffer Variance { float variance[]; };
layout(set = 0, binding = 4) writeonly buffer SumDY { float sum_dy[]; };
layout(set = 0, binding = 5) writeonly buffer SumDYXhat { float sum_dy_xhat[]; };
VEC4_INPUT(6, X4, x4);     // x and dy as whole quads (texels where the device prefers them)
VEC4_INPUT(7, DY4, dy4);

#define REDUCE_SIZE 256
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"
#include "channel.glsl"
#include "../common/quad_sum.glsl"

void main() {
    const uint c = workgroup_channel();
    if (c >= CHANNELS) return;   // a whole workgroup: no barrier is left waiting
    const uint t = gl_LocalInvocationIndex;
    const float m = mean[c];
    const float invstd = 1.0 / sqrt(variance[c] + EPS);
    float partial_dy = 0.0, partial_dy_xhat = 0.0;
    if (SPATIAL % 4 == 0) {   // a specialization constant: one branch is compiled
        vec4 quads_dy = vec4(0.0), quads_dy_xhat = vec4(0.0);
        for (uint k4 = t * REDUCE_RUN; k4 < VALUES / 4; k4 += REDUCE_SIZE * REDUCE_RUN) {
            const uint run = channel_value(c, 4 * k4) / 4;
            for (uint r = 0; r < REDUCE_RUN; ++r) {
                const vec4 g = LOAD4(dy4, run + r);
                quads_dy += g;
                quads_dy_xhat += g * ((LOAD4(x4, run + r) - m) * invstd);
            }
        }
        partial_dy = quad_sum(quads_dy);
        partial_dy_xhat = quad_sum(quads_dy_xhat);
    } else {
        for (uint k = t; k < VALUES; k += REDUCE_SIZE) {
            const uint i = channel_value(c, k);
            partial_dy += dy[i];
            partial_dy_xhat += dy[i] * ((x[i] - m) * invstd);
        }
    }
    const float total_dy = workgroup_sum(partial_dy);
    barrier();   // every invocation has read the first sum before the scratch is reused
    const float total_dy_xhat = workgroup_sum(partial_dy_xhat);
    if (t == 0) {
        sum_dy[c] = total_dy;
        sum_dy_xhat[c] = total_dy_xhat;
    }
}
