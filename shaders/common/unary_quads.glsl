// An elementwise layer's forward pass, y = f(x), on quads of 4 elements (common/vec4_index.glsl).
// The includer defines, after including this, `vec4 forward_quad(vec4 x, uint first)`: f of four
// elements, x.x being element `first` (for counter-based functions of the index: dropout's mask;
// MAP4 applies a float function to each); its own specialization constants take ids from 1 on.
// x's quads are storage reads: as texels (common/vec4_input.glsl) ReLU, LeakyReLU and Tanh's
// forward passes ran 10-40% slower on lavapipe, a load per store.

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };      // the 0-3 elements after the quads
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(set = 0, binding = 2) readonly buffer X4 { vec4 x4[]; };     // x and y as whole quads
layout(set = 0, binding = 3) writeonly buffer Y4 { vec4 y4[]; };

layout(local_size_x = 64) in;
#include "vec4_index.glsl"

vec4 forward_quad(vec4 x, uint first);

void main() {
    const uint stride = grid_invocations();
    uint q = flat_index();
    for (; q < QUADS; q += stride) y4[q] = forward_quad(x4[q], 4 * q);
    if (q == QUADS) for (uint i = 4 * q; i < NUMEL; ++i) y[i] = forward_quad(vec4(x[i]), i).x;   // the tail
}
