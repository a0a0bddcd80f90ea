#version 450
#extension GL_GOOGLE_include_directive : require
// One parameter gradient of layer norm, per column d of the (ROWS, COLS) activations:
//   TIMES_XHAT (dweight): dparam[d] = sum over rows of dy * xhat, xhat = (x - mean[row]) * invstd[row]
//   else       (dbias):   dparam[d] = sum over rows of dy   (x, mean and invstd are never read)
// One invocation per column, rows in a fixed order (deterministic). Loop iterations: ROWS + 1.

layout(constant_id = 0) const uint ROWS = 1;
layout(constant_id = 1) const uint COLS = 1;
layout(constant_id = 2) const bool TIMES_XHAT = true;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) readonly buffer Mean { float mean[]; };
layout(set = 0, binding = 3) readonly buffer Invstd { float invstd[]; };
layout(set = 0, binding = 4) writeonly buffer DParam { float dparam[]; };

layout(local_size_x = 64) in;
#include "../common/index.glsl"

void main() {
    const uint d = flat_index();
    if (d >= COLS) return;
    float sum = 0.0;
    for (uint row = 0; row < ROWS; ++row) {
        const uint i = row * COLS + d;
        sum += TIMES_XHAT ? dy[i] * ((x[i] - mean[row]) * invstd[row]) : dy[i];
    }
    dparam[d] = sum;
}
