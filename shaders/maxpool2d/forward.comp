#version 450
#extension GL_GOOGLE_include_directive : require
// MaxPool2d forward: y = the largest input in each output's window, and argmax = its flat index
// within the input plane (saved for backward). Windows are scanned row by row; the first maximum
// wins ties and a NaN wins over numbers (the last NaN, like PyTorch on the CPU). Padded positions
// never win: the window is clipped to the input.

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(set = 0, binding = 2) writeonly buffer Argmax { uint argmax[]; };

#include "../common/pool.glsl"

void main() {
    const int o = int(flat_index());
    if (o >= PLANES * OUT_H * OUT_W) return;
    const ivec3 p = position(o, OUT_H, OUT_W);
    const Taps rows = row_taps(p.y), cols = col_taps(p.z);
    const int plane = p.x * IN_H * IN_W;
    // The first tap always replaces the "none yet" index, so a window of -inf still names an input
    // (vkbackprop/layers/pool.py rejects geometries with a window that holds no input position).
    const uint NONE = 0xFFFFFFFFu;
    float best = uintBitsToFloat(0xFF800000u);   // -inf
    uint best_index = NONE;
    for (int r = 0; r < rows.count; ++r) {
        const int ih = rows.first + r * rows.step;
        for (int c = 0; c < cols.count; ++c) {
            const int index = ih * IN_W + cols.first + c * cols.step;
            const float v = x[plane + index];
            if (v > best || isnan(v) || best_index == NONE) {
                best = v;
                best_index = uint(index);
            }
        }
    }
    y[o] = best;
    argmax[o] = best_index;
}
