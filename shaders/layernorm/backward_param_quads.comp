#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// backward_param.comp on quads (COLS % 4 == 0): one invocation per 4 neighbouring columns, rows in
// the same fixed order, so each column's sum has the same terms in the same order (the same bits).
//   TIMES_XHAT (dweight): dparam[d] = sum over rows of dy * xhat, xhat = (x - mean[row]) * invstd[row]
//   else       (dbias):   dparam[d] = sum over rows of dy   (x, mean and invstd are never read)
// Loop iterations: ROWS + 1.

layout(constant_id = 0) const uint ROWS = 1;
layout(constant_id = 1) const uint COLS = 4;
layout(constant_id = 2) const bool TIMES_XHAT = true;

VEC4_INPUT(0, X4, x4);
VEC4_INPUT(1, DY4, dy4);
layout(set = 0, binding = 2) readonly buffer Mean { float mean[]; };
layout(set = 0, binding = 3) readonly buffer Invstd { float invstd[]; };
layout(set = 0, binding = 4) writeonly buffer DParam4 { vec4 dparam4[]; };

layout(local_size_x = 16) in;
#include "../common/index.glsl"

const uint QUADS = COLS / 4;

void main() {
    const uint q = flat_index();
    if (q >= QUADS) return;
    vec4 sum = vec4(0.0);
    for (uint row = 0; row < ROWS; ++row) {
        const uint i = row * QUADS + q;
        sum += TIMES_XHAT ? LOAD4(dy4, i) * ((LOAD4(x4, i) - mean[row]) * invstd[row]) : LOAD4(dy4, i);
    }
    dparam4[q] = sum;
}
