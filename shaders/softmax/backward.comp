#version 450
#extension GL_GOOGLE_include_directive : require
// dx = y * (dy - sum_c dy[c] * y[c]) along each row, from the saved output y (as PyTorch's
// softmax_backward). One invocation per row; the sum runs in a fixed order (deterministic).
// Loop iterations per invocation: 2 * COLS + 1 (layers/softmax.py, backward_loop_iterations).
// Where COLS % 4 == 0 the loops run over quads (y4 .. views of the same buffers, four partial
// results a row combined in a fixed order): on lavapipe each load instruction costs about what
// one value does; its loop iterations then count COLS / 4.

layout(constant_id = 0) const uint ROWS = 1;
layout(constant_id = 1) const uint COLS = 1;

layout(set = 0, binding = 0) readonly buffer Y { float y[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };
layout(set = 0, binding = 3) readonly buffer Y4 { vec4 y4[]; };
layout(set = 0, binding = 4) readonly buffer DY4 { vec4 dy4[]; };
layout(set = 0, binding = 5) writeonly buffer DX4 { vec4 dx4[]; };

layout(local_size_x = 64) in;
#include "../common/index.glsl"
#include "../common/quad_sum.glsl"

void main() {
    const uint r = flat_index();
    if (r >= ROWS) return;
    if (COLS % 4 == 0) {   // a specialization constant: one branch is compiled
        const uint base = r * (COLS / 4);
        vec4 partial = vec4(0.0);
        for (uint q = 0; q < COLS / 4; ++q) partial += dy4[base + q] * y4[base + q];
        const float dot_dy_y = quad_sum(partial);
        for (uint q = 0; q < COLS / 4; ++q) dx4[base + q] = y4[base + q] * (dy4[base + q] - dot_dy_y);
        return;
    }
    const uint row = r * COLS;
    float dot_dy_y = 0.0;
    for (uint c = 0; c < COLS; ++c) dot_dy_y += dy[row + c] * y[row + c];
    for (uint c = 0; c < COLS; ++c) dx[row + c] = y[row + c] * (dy[row + c] - dot_dy_y);
}
