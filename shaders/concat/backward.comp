#version 450
#extension GL_GOOGLE_include_directive : require
// Concat backward, one input: dx[r, c] = dy[r, OFFSET + c], the input's column slice of dy
// (dx (rows, WIDTH), dy (rows, OUT_WIDTH)).

layout(constant_id = 0) const uint NUMEL = 1;      // rows * WIDTH
layout(constant_id = 1) const uint WIDTH = 1;
layout(constant_id = 2) const uint OUT_WIDTH = 1;
layout(constant_id = 3) const uint OFFSET = 0;

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) writeonly buffer DX { float dx[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) {
        const uint row = i / WIDTH, col = i - row * WIDTH;
        dx[i] = dy[row * OUT_WIDTH + OFFSET + col];
    }
}
