#version 450
#extension GL_GOOGLE_include_directive : require
// dx of layer norm per row, from the saved mean and invstd: with g = dy * weight (dy without
// AFFINE; the weight binding is then never read) and xhat = (x - mean) * invstd,
//   dx = invstd * (g - (sum(g) + xhat * sum(g * xhat)) / COLS).
// One workgroup per row (counts above 65,535 fold into y); the row sums are strided partial sums
// then fixed shared-memory trees (deterministic). Loop iterations: 2 strided passes and 2 trees
// (layers/norm.py, workgroup_loop_iterations).

layout(constant_id = 0) const uint ROWS = 1;
layout(constant_id = 1) const uint COLS = 1;
layout(constant_id = 2) const bool AFFINE = true;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 3) readonly buffer Mean { float mean[]; };
layout(set = 0, binding = 4) readonly buffer Invstd { float invstd[]; };
layout(set = 0, binding = 5) writeonly buffer DX { float dx[]; };

#define REDUCE_SIZE 64
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"

void main() {
    const uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= ROWS) return;   // a whole workgroup: no barrier is left waiting
    const uint t = gl_LocalInvocationIndex;
    const uint base = row * COLS;
    const float m = mean[row], s = invstd[row];
    float partial_g = 0.0, partial_g_xhat = 0.0;
    for (uint d = t; d < COLS; d += REDUCE_SIZE) {
        const float g = AFFINE ? dy[base + d] * weight[d] : dy[base + d];
        partial_g += g;
        partial_g_xhat += g * ((x[base + d] - m) * s);
    }
    const float sum_g = workgroup_sum(partial_g);
    barrier();   // every invocation has read the first sum before the scratch is reused
    const float sum_g_xhat = workgroup_sum(partial_g_xhat);
    for (uint d = t; d < COLS; d += REDUCE_SIZE) {
        const float g = AFFINE ? dy[base + d] * weight[d] : dy[base + d];
        const float xhat = (x[base + d] - m) * s;
        dx[base + d] = s * (g - (sum_g + xhat * sum_g_xhat) / float(COLS));
    }
}
