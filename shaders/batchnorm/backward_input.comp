#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// dx of batch norm, per element of channel c, with invstd = 1 / sqrt(variance[c] + EPS):
//   BATCH_STATS (training): the statistics depend on x, so
//     dx = weight[c] * invstd * (dy - sum_dy[c] / VALUES - xhat * sum_dy_xhat[c] / VALUES),
//     xhat = (x - mean[c]) * invstd, the sums from backward_reduce.comp;
//   else (eval mode, running statistics): the affine map's dx = weight[c] * invstd * dy, and
//     x, mean, sum_dy and sum_dy_xhat are never read.
// Without AFFINE the weight is 1 and its binding is never read.
// On quads of 4 elements (common/vec4_index.glsl): where SPATIAL % 4 == 0 runs of RUN quads of one
// channel, its statistics, parameters and sums loaded once for the run (the ResNet benchmark's
// batch norms, dx: 11.2 -> 8.4 ms a step on lavapipe).

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const uint CHANNELS = 1;
layout(constant_id = 2) const uint SPATIAL = 1;
layout(constant_id = 3) const uint VALUES = 1;
layout(constant_id = 4) const float EPS = 1e-5;
layout(constant_id = 5) const bool AFFINE = true;
layout(constant_id = 6) const bool BATCH_STATS = true;
layout(constant_id = 7) const uint RUN = 1;   // quads an invocation takes in a row (divides SPATIAL / 4)

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) readonly buffer Mean { float mean[]; };
layout(set = 0, binding = 3) readonly buffer Variance { float variance[]; };
layout(set = 0, binding = 4) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 5) readonly buffer SumDY { float sum_dy[]; };
layout(set = 0, binding = 6) readonly buffer SumDYXhat { float sum_dy_xhat[]; };
layout(set = 0, binding = 7) writeonly buffer DX { float dx[]; };
VEC4_INPUT(8, X4, x4);     // x, dy and dx as whole quads (x and dy as texels where the device prefers them)
VEC4_INPUT(9, DY4, dy4);
layout(set = 0, binding = 10) writeonly buffer DX4 { vec4 dx4[]; };

layout(local_size_x = 64) in;
#include "../common/vec4_index.glsl"
#include "channel.glsl"

// dx for each component, with the statistics, parameters and sums of its channel (the rest).
vec4 input_gradient(const vec4 g, const vec4 v, const vec4 m, const vec4 var, const vec4 w, const vec4 s,
                    const vec4 s_xhat) {
    const vec4 invstd = 1.0 / sqrt(var + EPS);
    const vec4 scale = AFFINE ? w * invstd : invstd;
    vec4 result = g;
    if (BATCH_STATS) {
        const vec4 xhat = (v - m) * invstd;
        result -= (s + xhat * s_xhat) / float(VALUES);
    }
    return scale * result;
}

// A channel's values, each only where it is used (a placeholder is bound otherwise).
float mean_of(const uint c) { return BATCH_STATS ? mean[c] : 0.0; }
float variance_of(const uint c) { return variance[c]; }
float weight_of(const uint c) { return AFFINE ? weight[c] : 1.0; }
float sum_dy_of(const uint c) { return BATCH_STATS ? sum_dy[c] : 0.0; }
float sum_dy_xhat_of(const uint c) { return BATCH_STATS ? sum_dy_xhat[c] : 0.0; }

// input_gradient() for values of one channel c, or of channels cs.
#define ONE_CHANNEL(g, v, c) input_gradient(g, v, vec4(mean_of(c)), vec4(variance_of(c)), vec4(weight_of(c)), \
                                            vec4(sum_dy_of(c)), vec4(sum_dy_xhat_of(c)))
#define CHANNELS_OF(g, v, cs) input_gradient(g, v, GATHER(mean_of, cs), GATHER(variance_of, cs), \
                                             GATHER(weight_of, cs), GATHER(sum_dy_of, cs), GATHER(sum_dy_xhat_of, cs))

void main() {
    const uint stride = grid_invocations();
    uint q = flat_index();
    if (SPATIAL % 4 == 0) {   // a specialization constant: one branch is compiled
        // Runs of RUN quads, each within one channel's plane: its statistics, parameters and sums
        // are loaded once per run.
        for (; q < QUADS / RUN; q += stride) {
            const uint c = channel_of(4 * RUN * q);
            const vec4 m = vec4(mean_of(c)), var = vec4(variance_of(c)), w = vec4(weight_of(c));
            const vec4 s = vec4(sum_dy_of(c)), s_xhat = vec4(sum_dy_xhat_of(c));
            for (uint k = RUN * q; k < RUN * (q + 1); ++k)
                dx4[k] = input_gradient(LOAD4(dy4, k), BATCH_STATS ? LOAD4(x4, k) : vec4(0.0), m, var, w, s, s_xhat);
        }
        return;   // NUMEL % 4 == 0: no tail
    }
    for (; q < QUADS; q += stride) {
        const uvec4 cs = quad_channels(q);
        dx4[q] = CHANNELS_OF(LOAD4(dy4, q), BATCH_STATS ? LOAD4(x4, q) : vec4(0.0), cs);
    }
    if (q == QUADS)   // the tail
        for (uint i = 4 * q; i < NUMEL; ++i) dx[i] = ONE_CHANNEL(vec4(dy[i]), vec4(BATCH_STATS ? x[i] : 0.0), channel_of(i)).x;
}
