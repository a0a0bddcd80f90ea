#version 450
#extension GL_GOOGLE_include_directive : require
// Concat forward, one input: y[r, OFFSET + c] = x[r, c] for x (rows, WIDTH) and y (rows, OUT_WIDTH).
// Concat dispatches this once per input, each writing its own column slice of y.

layout(constant_id = 0) const uint NUMEL = 1;      // rows * WIDTH
layout(constant_id = 1) const uint WIDTH = 1;
layout(constant_id = 2) const uint OUT_WIDTH = 1;
layout(constant_id = 3) const uint OFFSET = 0;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) {
        const uint row = i / WIDTH, col = i - row * WIDTH;
        y[row * OUT_WIDTH + OFFSET + col] = x[i];
    }
}
