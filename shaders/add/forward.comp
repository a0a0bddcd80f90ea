#version 450
#extension GL_GOOGLE_include_directive : require
// y = a + b (Add of n inputs chains n - 1 of these, the later ones with a = y), on quads of 4
// elements (see common/vec4_index.glsl). With RELU it stores max(y, 0): a ReLU that reads this
// output alone (plan.py fuses the pair into the last of the chain; bit-identical).

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const bool RELU = false;

layout(set = 0, binding = 0) readonly buffer A { float a[]; };
layout(set = 0, binding = 1) readonly buffer B { float b[]; };
layout(set = 0, binding = 2) writeonly buffer Y { float y[]; };
layout(set = 0, binding = 5) writeonly buffer Y4 { vec4 y4[]; };     // a, b and y as whole quads,
#include "../common/vec4_input.glsl"                                    // a and b read as texels where
VEC4_INPUT(3, A4, a4);                                                  // the device prefers them
VEC4_INPUT(4, B4, b4);

layout(local_size_x = 64) in;
#include "../common/vec4_index.glsl"

vec4 sum(const vec4 u, const vec4 v) { return RELU ? max(u + v, 0.0) : u + v; }

void main() {
    const uint stride = grid_invocations();
    uint q = flat_index();
    for (; q < QUADS; q += stride) y4[q] = sum(LOAD4(a4, q), LOAD4(b4, q));
    if (q == QUADS) for (uint i = 4 * q; i < NUMEL; ++i) y[i] = sum(vec4(a[i]), vec4(b[i])).x;   // the tail
}
