#version 450
#extension GL_GOOGLE_include_directive : require
// Layer norm of each row of a (ROWS, COLS) matrix (COLS = the normalized_shape's size):
//   y = (x - mean) * invstd * weight + bias,  invstd = 1 / sqrt(biased variance + EPS),
// weight and bias per column (left out without AFFINE / HAS_BIAS; their bindings are then never
// read). Saves mean[row] and invstd[row] for backward. One workgroup per row (counts above 65,535
// fold into y): strided partial sums, fixed shared-memory trees (deterministic); two passes, the
// variance from squared deviations. Loop iterations: 3 strided passes and 2 trees
// (layers/norm.py, workgroup_loop_iterations).

layout(constant_id = 0) const uint ROWS = 1;
layout(constant_id = 1) const uint COLS = 1;
layout(constant_id = 2) const float EPS = 1e-5;
layout(constant_id = 3) const bool AFFINE = true;
layout(constant_id = 4) const bool HAS_BIAS = true;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(set = 0, binding = 3) writeonly buffer Y { float y[]; };
layout(set = 0, binding = 4) writeonly buffer Mean { float mean[]; };
layout(set = 0, binding = 5) writeonly buffer Invstd { float invstd[]; };

#define REDUCE_SIZE 64
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"

void main() {
    const uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= ROWS) return;   // a whole workgroup: no barrier is left waiting
    const uint t = gl_LocalInvocationIndex;
    const uint base = row * COLS;
    float partial = 0.0;
    for (uint d = t; d < COLS; d += REDUCE_SIZE) partial += x[base + d];
    const float m = workgroup_sum(partial) / float(COLS);
    partial = 0.0;
    for (uint d = t; d < COLS; d += REDUCE_SIZE) {
        const float deviation = x[base + d] - m;
        partial += deviation * deviation;
    }
    barrier();   // every invocation has read the first sum before the scratch is reused
    const float s = 1.0 / sqrt(workgroup_sum(partial) / float(COLS) + EPS);
    for (uint d = t; d < COLS; d += REDUCE_SIZE) {
        float value = (x[base + d] - m) * s;
        if (AFFINE) value *= weight[d];
        if (HAS_BIAS) value += bias[d];
        y[base + d] = value;
    }
    if (t == 0) {
        mean[row] = m;
        invstd[row] = s;
    }
}
