// An elementwise layer's backward pass, dx = dy * f'(from what forward saved: x or y), on quads of
// 4 elements (common/vec4_index.glsl). The includer defines, after including this,
// `vec4 backward_quad(vec4 saved, vec4 dy)` for four elements (MAP4 applies a float function to
// each); its own specialization constants take ids from 1 on. Storage reads: as texels
// (common/vec4_input.glsl) they measured no faster on lavapipe.

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer Saved { float saved[]; };   // the 0-3 elements after the quads
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };
layout(set = 0, binding = 3) readonly buffer Saved4 { vec4 saved4[]; };  // the same buffers as whole quads
layout(set = 0, binding = 4) readonly buffer DY4 { vec4 dy4[]; };
layout(set = 0, binding = 5) writeonly buffer DX4 { vec4 dx4[]; };

layout(local_size_x = 64) in;
#include "vec4_index.glsl"

vec4 backward_quad(vec4 saved, vec4 dy);

void main() {
    const uint stride = grid_invocations();
    uint q = flat_index();
    for (; q < QUADS; q += stride) dx4[q] = backward_quad(saved4[q], dy4[q]);
    if (q == QUADS)   // the tail
        for (uint i = 4 * q; i < NUMEL; ++i) dx[i] = backward_quad(vec4(saved[i]), vec4(dy[i])).x;
}
