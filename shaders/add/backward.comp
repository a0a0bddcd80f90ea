#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy: every input of a sum receives the sum's whole gradient. With RELU_BACKWARD the sum's
// forward applied a ReLU (add/forward.comp's RELU), dy is the ReLU's output gradient and mask its
// output: dx = dy where mask > 0, else 0, as relu/backward.comp computes it. On quads of 4
// elements (see common/vec4_index.glsl).

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const bool RELU_BACKWARD = false;

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) readonly buffer Mask { float mask[]; };   // never read without RELU_BACKWARD
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };
layout(set = 0, binding = 3) readonly buffer DY4 { vec4 dy4[]; };      // dy, mask and dx as whole quads
layout(set = 0, binding = 4) readonly buffer Mask4 { vec4 mask4[]; };
layout(set = 0, binding = 5) writeonly buffer DX4 { vec4 dx4[]; };

layout(local_size_x = 64) in;
#include "../common/vec4_index.glsl"

void main() {
    const uint stride = grid_invocations();
    uint q = flat_index();
    for (; q < QUADS; q += stride)
        dx4[q] = RELU_BACKWARD ? mix(vec4(0.0), dy4[q], greaterThan(mask4[q], vec4(0.0))) : dy4[q];
    if (q == QUADS)   // the tail
        for (uint i = 4 * q; i < NUMEL; ++i) dx[i] = RELU_BACKWARD ? (mask[i] > 0.0 ? dy[i] : 0.0) : dy[i];
}
