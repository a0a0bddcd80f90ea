#version 450
#extension GL_GOOGLE_include_directive : require
// y = softmax(x) along each row of a (ROWS, COLS) matrix: exp(x - m) / sum_c exp(x[c] - m), m the
// row maximum. Subtracting m keeps every exp in (0, 1] (and the sum >= 1), so huge logits neither
// overflow nor give inf / inf. One invocation per row; columns in a fixed order (deterministic).
// Loop iterations per invocation: 3 * COLS + 1 (checked on the host against lavapipe's loop limit:
// layers/softmax.py, forward_loop_iterations).
// Where COLS % 4 == 0 the loops run over quads (x4 .. views of the same buffers, four partial
// results a row combined in a fixed order): on lavapipe each load instruction costs about what
// one value does; its loop iterations then count COLS / 4.

layout(constant_id = 0) const uint ROWS = 1;
layout(constant_id = 1) const uint COLS = 1;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(set = 0, binding = 2) readonly buffer X4 { vec4 x4[]; };
layout(set = 0, binding = 3) writeonly buffer Y4 { vec4 y4[]; };

layout(local_size_x = 64) in;
#include "../common/index.glsl"
#include "../common/quad_sum.glsl"

void main() {
    const uint r = flat_index();
    if (r >= ROWS) return;
    if (COLS % 4 == 0) {   // a specialization constant: one branch is compiled
        const uint base = r * (COLS / 4);
        vec4 peaks = x4[base];
        for (uint q = 1; q < COLS / 4; ++q) peaks = max(peaks, x4[base + q]);
        const float peak = max(max(peaks.x, peaks.y), max(peaks.z, peaks.w));
        vec4 totals = vec4(0.0);
        for (uint q = 0; q < COLS / 4; ++q) totals += exp(x4[base + q] - peak);
        const float total = quad_sum(totals);
        for (uint q = 0; q < COLS / 4; ++q) y4[base + q] = exp(x4[base + q] - peak) / total;
        return;
    }
    const uint row = r * COLS;
    float peak = x[row];
    for (uint c = 1; c < COLS; ++c) peak = max(peak, x[row + c]);
    float total = 0.0;
    for (uint c = 0; c < COLS; ++c) total += exp(x[row + c] - peak);
    for (uint c = 0; c < COLS; ++c) y[row + c] = exp(x[row + c] - peak) / total;
}
