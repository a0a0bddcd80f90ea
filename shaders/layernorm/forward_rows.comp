#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// forward.comp with one invocation per row, on quads (COLS % 4 == 0): for CPU devices (lavapipe),
// where forward.comp's shared-memory trees cost a barrier per level and every load instruction
// costs about what one value does. Same formulas: y = (x - mean) * invstd * weight + bias, the
// variance from squared deviations (two passes); the row sums are four interleaved partial sums
// (one per quad component), added in a fixed order: deterministic, independent of the subgroup
// size. Loop iterations: 3 passes of COLS / 4 (layers/norm.py).

layout(constant_id = 0) const uint ROWS = 1;
layout(constant_id = 1) const uint COLS = 4;
layout(constant_id = 2) const float EPS = 1e-5;
layout(constant_id = 3) const bool AFFINE = true;
layout(constant_id = 4) const bool HAS_BIAS = true;

VEC4_INPUT(0, X4, x4);
VEC4_INPUT(1, Weight4, weight4);
VEC4_INPUT(2, Bias4, bias4);
layout(set = 0, binding = 3) writeonly buffer Y4 { vec4 y4[]; };
layout(set = 0, binding = 4) writeonly buffer Mean { float mean[]; };
layout(set = 0, binding = 5) writeonly buffer Invstd { float invstd[]; };

layout(local_size_x = 16) in;
#include "../common/index.glsl"
#include "../common/quad_sum.glsl"

const uint QUADS = COLS / 4;

void main() {
    const uint row = flat_index();
    if (row >= ROWS) return;
    const uint base = row * QUADS;
    vec4 partial = vec4(0.0);
    for (uint q = 0; q < QUADS; ++q) partial += LOAD4(x4, base + q);
    const float m = quad_sum(partial) / float(COLS);
    partial = vec4(0.0);
    for (uint q = 0; q < QUADS; ++q) {
        const vec4 deviation = LOAD4(x4, base + q) - m;
        partial += deviation * deviation;
    }
    const float s = 1.0 / sqrt(quad_sum(partial) / float(COLS) + EPS);
    for (uint q = 0; q < QUADS; ++q) {
        vec4 value = (LOAD4(x4, base + q) - m) * s;
        if (AFFINE) value *= LOAD4(weight4, q);
        if (HAS_BIAS) value += LOAD4(bias4, q);
        y4[base + q] = value;
    }
    mean[row] = m;
    invstd[row] = s;
}
