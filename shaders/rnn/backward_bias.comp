#version 450
#extension GL_GOOGLE_include_directive : require
// dbias_ih[g] and dbias_hh[g]: sums over every position (b, t) of the input-side and hidden-side
// gate gradients (equal except for GRU's n gate). One invocation per gate row, a fixed order.

layout(constant_id = 0) const uint ROWS = 1;       // gate rows (gates * hidden)
layout(constant_id = 1) const uint POSITIONS = 1;  // batch * steps
layout(constant_id = 2) const uint SAVED = 1;      // floats per dgates row
layout(constant_id = 3) const uint SKIP_FROM = 0;  // hidden-side column of row g: g, or g + SKIP from SKIP_FROM on
layout(constant_id = 4) const uint SKIP = 0;

layout(set = 0, binding = 0) readonly buffer DGates { float dgates[]; };
layout(set = 0, binding = 1) writeonly buffer DBiasIH { float dbias_ih[]; };
layout(set = 0, binding = 2) writeonly buffer DBiasHH { float dbias_hh[]; };

layout(local_size_x = 64) in;
#include "../common/index.glsl"

void main() {
    const uint g = flat_index();
    if (g >= ROWS) return;
    const uint hidden_column = g < SKIP_FROM ? g : g + SKIP;
    float input_side = 0.0, hidden_side = 0.0;
    for (uint p = 0; p < POSITIONS; ++p) {
        input_side += dgates[p * SAVED + g];
        hidden_side += dgates[p * SAVED + hidden_column];
    }
    dbias_ih[g] = input_side;
    dbias_hh[g] = hidden_side;
}
