// Average pooling backward (AvgPool2d, AdaptiveAvgPool2d): dx[i] = the sum of dy[o] / divisor(o)
// over the outputs o whose windows hold input i, gathered per input (no atomics). Average pooling
// has no dilation, so every output in the covering range holds i.

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) writeonly buffer DX { float dx[]; };

#include "average.glsl"

void main() {
    const int i = int(flat_index());
    if (i >= PLANES * IN_H * IN_W) return;
    const ivec3 p = position(i, IN_H, IN_W);
    const ivec2 rows = rows_covering(p.y), cols = cols_covering(p.z);
    const int plane = p.x * OUT_H * OUT_W;
    float sum = 0.0;
    for (int oh = rows.x; oh < rows.y; ++oh)
        for (int ow = cols.x; ow < cols.y; ++ow) sum += dy[plane + oh * OUT_W + ow] / divisor(oh, ow);
    dx[i] = sum;
}
