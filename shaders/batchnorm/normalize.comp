#version 450
#extension GL_GOOGLE_include_directive : require
// y = (x - mean[c]) / sqrt(variance[c] + EPS) * weight[c] + bias[c], c the element's channel; the
// batch statistics in training mode, the running ones in eval mode. Without AFFINE (HAS_BIAS) the
// weight and bias (the bias) are left out and their bindings are never read.

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const uint CHANNELS = 1;
layout(constant_id = 2) const uint SPATIAL = 1;
layout(constant_id = 3) const float EPS = 1e-5;
layout(constant_id = 4) const bool AFFINE = true;
layout(constant_id = 5) const bool HAS_BIAS = true;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer Mean { float mean[]; };
layout(set = 0, binding = 2) readonly buffer Variance { float variance[]; };
layout(set = 0, binding = 3) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 4) readonly buffer Bias { float bias[]; };
layout(set = 0, binding = 5) writeonly buffer Y { float y[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"
#include "channel.glsl"

void main() {
    const uint i = flat_index();
    if (i >= NUMEL) return;
    const uint c = channel_of(i);
    float value = (x[i] - mean[c]) / sqrt(variance[c] + EPS);
    if (AFFINE) value *= weight[c];
    if (HAS_BIAS) value += bias[c];
    y[i] = value;
}
