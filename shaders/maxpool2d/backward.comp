#version 450
#extension GL_GOOGLE_include_directive : require
// MaxPool2d backward: dx[i] = the sum of dy over the outputs whose saved argmax is i. Gathered per
// input over the outputs whose windows can hold it (rows, then columns, ascending: the order in
// which PyTorch's CPU kernel accumulates), so overlapping windows need no atomics.

layout(set = 0, binding = 0) readonly buffer Argmax { uint argmax[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };

#include "../common/pool.glsl"

void main() {
    const int i = int(flat_index());
    if (i >= PLANES * IN_H * IN_W) return;
    const ivec3 p = position(i, IN_H, IN_W);
    const ivec2 rows = rows_covering(p.y), cols = cols_covering(p.z);
    const uint index = uint(p.y * IN_W + p.z);
    const int plane = p.x * OUT_H * OUT_W;
    float sum = 0.0;
    for (int oh = rows.x; oh < rows.y; ++oh)
        for (int ow = cols.x; ow < cols.y; ++ow) {
            const int o = plane + oh * OUT_W + ow;
            if (argmax[o] == index) sum += dy[o];
        }
    dx[i] = sum;
}
