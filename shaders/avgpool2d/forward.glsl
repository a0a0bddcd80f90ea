// Average pooling forward (AvgPool2d, AdaptiveAvgPool2d): y = the sum of the inputs in each
// output's window (clipped to the input), divided by divisor().

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };

#include "average.glsl"

void main() {
    const int o = int(flat_index());
    if (o >= PLANES * OUT_H * OUT_W) return;
    const ivec3 p = position(o, OUT_H, OUT_W);
    const Taps rows = row_taps(p.y), cols = col_taps(p.z);
    const int plane = p.x * IN_H * IN_W;
    float sum = 0.0;
    for (int r = 0; r < rows.count; ++r) {
        const int ih = rows.first + r * rows.step;
        for (int c = 0; c < cols.count; ++c) sum += x[plane + ih * IN_W + cols.first + c * cols.step];
    }
    y[o] = sum / divisor(p.y, p.z);
}
