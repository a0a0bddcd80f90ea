// Average pooling backward (AvgPool2d, AdaptiveAvgPool2d) where windows do not overlap (each input
// lies in at most one window per axis) and input rows hold whole quads (IN_W % 4 == 0): one
// invocation writes 4 neighbouring inputs of a row as a quad, each dy[o] / divisor(o) of the window
// o holding it, else 0. backward.glsl's sum of at most one term, without its covering loops and
// per-element index arithmetic (on lavapipe: AvgPool2d(2) on 32x32x32x32 4.0 -> 1.3 ms, global
// pooling of 64x64x8x8 0.9 -> 0.4 ms).

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) writeonly buffer DX4 { vec4 dx4[]; };

#include "average.glsl"

const int ROW_QUADS = IN_W / 4;

void main() {
    const int q = int(flat_index());
    if (q >= PLANES * IN_H * ROW_QUADS) return;
    const int row = q / ROW_QUADS;                     // plane * IN_H + ih
    const int iw = 4 * (q % ROW_QUADS);
    const ivec2 rows = rows_covering(row % IN_H);      // empty, or the one window row holding ih
    const int out_row = (row / IN_H) * OUT_H + rows.x;
    vec4 grad = vec4(0.0);
    for (int c = 0; c < 4; ++c) {
        const ivec2 cols = cols_covering(iw + c);
        if (rows.x < rows.y && cols.x < cols.y)
            grad[c] = dy[out_row * OUT_W + cols.x] / divisor(rows.x, cols.x);
    }
    dx4[q] = grad;
}
