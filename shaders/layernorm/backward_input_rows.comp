#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// backward_input.comp with one invocation per row, on quads (COLS % 4 == 0), for CPU devices (see
// forward_rows.comp): with g = dy * weight (dy without AFFINE) and xhat = (x - mean) * invstd,
//   dx = invstd * (g - (sum(g) + xhat * sum(g * xhat)) / COLS),
// the row sums as four interleaved partial sums added in a fixed order. Loop iterations: 2 passes
// of COLS / 4 (layers/norm.py).

layout(constant_id = 0) const uint ROWS = 1;
layout(constant_id = 1) const uint COLS = 4;
layout(constant_id = 2) const bool AFFINE = true;

VEC4_INPUT(0, X4, x4);
VEC4_INPUT(1, DY4, dy4);
VEC4_INPUT(2, Weight4, weight4);
layout(set = 0, binding = 3) readonly buffer Mean { float mean[]; };
layout(set = 0, binding = 4) readonly buffer Invstd { float invstd[]; };
layout(set = 0, binding = 5) writeonly buffer DX4 { vec4 dx4[]; };

layout(local_size_x = 16) in;
#include "../common/index.glsl"
#include "../common/quad_sum.glsl"

const uint QUADS = COLS / 4;

void main() {
    const uint row = flat_index();
    if (row >= ROWS) return;
    const uint base = row * QUADS;
    const float m = mean[row], s = invstd[row];
    vec4 partial_g = vec4(0.0), partial_g_xhat = vec4(0.0);
    for (uint q = 0; q < QUADS; ++q) {
        const vec4 g = AFFINE ? LOAD4(dy4, base + q) * LOAD4(weight4, q) : LOAD4(dy4, base + q);
        partial_g += g;
        partial_g_xhat += g * ((LOAD4(x4, base + q) - m) * s);
    }
    const float sum_g = quad_sum(partial_g), sum_g_xhat = quad_sum(partial_g_xhat);
    for (uint q = 0; q < QUADS; ++q) {
        const vec4 g = AFFINE ? LOAD4(dy4, base + q) * LOAD4(weight4, q) : LOAD4(dy4, base + q);
        const vec4 xhat = (LOAD4(x4, base + q) - m) * s;
        dx4[base + q] = s * (g - (sum_g + xhat * sum_g_xhat) / float(COLS));
    }
}
