#version 450
#extension GL_GOOGLE_include_directive : require
// y = softmax(x) along each row of a (ROWS, COLS) matrix: exp(x - m) / sum_c exp(x[c] - m), m the
// row maximum. Subtracting m keeps every exp in (0, 1] (and the sum >= 1), so huge logits neither
// overflow nor give inf / inf. One invocation per row; columns in a fixed order (deterministic).
// Loop iterations per invocation: 3 * COLS + 1 (checked on the host against lavapipe's loop limit:
// layers/softmax.py, forward_loop_iterations).

layout(constant_id = 0) const uint ROWS = 1;
layout(constant_id = 1) const uint COLS = 1;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };

layout(local_size_x = 64) in;
#include "../common/index.glsl"

void main() {
    const uint r = flat_index();
    if (r >= ROWS) return;
    const uint row = r * COLS;
    float peak = x[row];
    for (uint c = 1; c < COLS; ++c) peak = max(peak, x[row + c]);
    float total = 0.0;
    for (uint c = 0; c < COLS; ++c) total += exp(x[row + c] - peak);
    for (uint c = 0; c < COLS; ++c) y[row + c] = exp(x[row + c] - peak) / total;
}
