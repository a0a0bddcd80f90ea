#version 450
#extension GL_GOOGLE_include_directive : require
// dx of batch norm, per element of channel c, with invstd = 1 / sqrt(variance[c] + EPS):
//   BATCH_STATS (training): the statistics depend on x, so
//     dx = weight[c] * invstd * (dy - sum_dy[c] / VALUES - xhat * sum_dy_xhat[c] / VALUES),
//     xhat = (x - mean[c]) * invstd, the sums from backward_reduce.comp;
//   else (eval mode, running statistics): the affine map's dx = weight[c] * invstd * dy, and
//     x, mean, sum_dy and sum_dy_xhat are never read.
// Without AFFINE the weight is 1 and its binding is never read.

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const uint CHANNELS = 1;
layout(constant_id = 2) const uint SPATIAL = 1;
layout(constant_id = 3) const uint VALUES = 1;
layout(constant_id = 4) const float EPS = 1e-5;
layout(constant_id = 5) const bool AFFINE = true;
layout(constant_id = 6) const bool BATCH_STATS = true;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) readonly buffer Mean { float mean[]; };
layout(set = 0, binding = 3) readonly buffer Variance { float variance[]; };
layout(set = 0, binding = 4) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 5) readonly buffer SumDY { float sum_dy[]; };
layout(set = 0, binding = 6) readonly buffer SumDYXhat { float sum_dy_xhat[]; };
layout(set = 0, binding = 7) writeonly buffer DX { float dx[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"
#include "channel.glsl"

void main() {
    const uint i = flat_index();
    if (i >= NUMEL) return;
    const uint c = channel_of(i);
    const float invstd = 1.0 / sqrt(variance[c] + EPS);
    const float scale = AFFINE ? weight[c] * invstd : invstd;
    float g = dy[i];
    if (BATCH_STATS) {
        const float xhat = (x[i] - mean[c]) * invstd;
        g -= (sum_dy[c] + xhat * sum_dy_xhat[c]) / float(VALUES);
    }
    dx[i] = scale * g;
}
