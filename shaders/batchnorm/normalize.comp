#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// y = (x - mean[c]) / sqrt(variance[c] + EPS) * weight[c] + bias[c], c the element's channel; the
// batch statistics in training mode, the running ones in eval mode. Without AFFINE (HAS_BIAS) the
// weight and bias (the bias) are left out and their bindings are never read. With RELU it stores
// max(y, 0): a ReLU that reads this output alone (plan.py fuses the pair; bit-identical).
// On quads of 4 elements (common/vec4_index.glsl): where SPATIAL % 4 == 0 runs of RUN quads of one
// channel, its statistics and parameters loaded once for the run (the ResNet benchmark's batch
// norms: 16.0 -> 7.5 ms a step on lavapipe); else each component with its own channel's.

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const uint CHANNELS = 1;
layout(constant_id = 2) const uint SPATIAL = 1;
layout(constant_id = 3) const float EPS = 1e-5;
layout(constant_id = 4) const bool AFFINE = true;
layout(constant_id = 5) const bool HAS_BIAS = true;
layout(constant_id = 6) const bool RELU = false;
layout(constant_id = 7) const uint RUN = 1;   // quads an invocation takes in a row (divides SPATIAL / 4)

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer Mean { float mean[]; };
layout(set = 0, binding = 2) readonly buffer Variance { float variance[]; };
layout(set = 0, binding = 3) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 4) readonly buffer Bias { float bias[]; };
layout(set = 0, binding = 5) writeonly buffer Y { float y[]; };
VEC4_INPUT(6, X4, x4);    // x as whole quads (texels where the device prefers them)
layout(set = 0, binding = 7) writeonly buffer Y4 { vec4 y4[]; };   // y as whole quads

layout(local_size_x = 64) in;
#include "../common/vec4_index.glsl"
#include "channel.glsl"

// Each component of v with the statistics and parameters of its channel (the components of the rest).
vec4 normalized(const vec4 v, const vec4 m, const vec4 var, const vec4 w, const vec4 b) {
    vec4 value = (v - m) / sqrt(var + EPS);
    if (AFFINE) value *= w;
    if (HAS_BIAS) value += b;
    return RELU ? max(value, 0.0) : value;
}

// A channel's values; the parameters only where they exist (a placeholder is bound otherwise).
float mean_of(const uint c) { return mean[c]; }
float variance_of(const uint c) { return variance[c]; }
float weight_of(const uint c) { return AFFINE ? weight[c] : 1.0; }
float bias_of(const uint c) { return HAS_BIAS ? bias[c] : 0.0; }

// normalized() for values of one channel c, or of channels cs.
#define ONE_CHANNEL(v, c) normalized(v, vec4(mean_of(c)), vec4(variance_of(c)), vec4(weight_of(c)), vec4(bias_of(c)))
#define CHANNELS_OF(v, cs) normalized(v, GATHER(mean_of, cs), GATHER(variance_of, cs), GATHER(weight_of, cs), \
                                      GATHER(bias_of, cs))

void main() {
    const uint stride = grid_invocations();
    uint q = flat_index();
    if (SPATIAL % 4 == 0) {   // a specialization constant: one branch is compiled
        // Runs of RUN quads, each within one channel's plane: its statistics and parameters are
        // loaded once per run.
        for (; q < QUADS / RUN; q += stride) {
            const uint c = channel_of(4 * RUN * q);
            const vec4 m = vec4(mean_of(c)), var = vec4(variance_of(c));
            const vec4 w = vec4(weight_of(c)), b = vec4(bias_of(c));
            for (uint k = RUN * q; k < RUN * (q + 1); ++k) y4[k] = normalized(LOAD4(x4, k), m, var, w, b);
        }
        return;   // NUMEL % 4 == 0: no tail
    }
    for (; q < QUADS; q += stride) {
        const uvec4 cs = quad_channels(q);
        y4[q] = CHANNELS_OF(LOAD4(x4, q), cs);
    }
    if (q == QUADS) for (uint i = 4 * q; i < NUMEL; ++i) y[i] = ONE_CHANNEL(vec4(x[i]), channel_of(i)).x;   // the tail
}
