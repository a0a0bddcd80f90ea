#version 450
#extension GL_GOOGLE_include_directive : require
// dbias[o] = sum_b dy[b, o]; one invocation per output feature, summed in a fixed order.

layout(constant_id = 0) const uint B = 1;  // batch
layout(constant_id = 1) const uint N = 1;  // out_features

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) writeonly buffer DBias { float dbias[]; };

layout(local_size_x = 64) in;
#include "../common/index.glsl"

void main() {
    const uint n = flat_index();
    if (n >= N) return;
    float sum = 0.0;
    for (uint b = 0; b < B; ++b) sum += dy[b * N + n];
    dbias[n] = sum;
}
