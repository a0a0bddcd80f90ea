#version 450
#extension GL_GOOGLE_include_directive : require
// Per sample b: dst[b*DST_STRIDE + DST_OFFSET + i] for i < WIDTH is src[b*SRC_STRIDE + SRC_OFFSET +
// i - FIRST] where FIRST <= i < FIRST + COUNT, else 0. Moves states between a layer's buffers and
// slices of (B, width) values (initial and final states, their gradients, Narrow); COUNT = 0 zeroes.

layout(constant_id = 0) const uint BATCH = 1;
layout(constant_id = 1) const uint WIDTH = 1;
layout(constant_id = 2) const uint DST_STRIDE = 1;
layout(constant_id = 3) const uint DST_OFFSET = 0;
layout(constant_id = 4) const uint SRC_STRIDE = 1;
layout(constant_id = 5) const uint SRC_OFFSET = 0;
layout(constant_id = 6) const uint FIRST = 0;
layout(constant_id = 7) const uint COUNT = 0;

layout(set = 0, binding = 0) readonly buffer Src { float src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { float dst[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint index = flat_index();
    if (index >= BATCH * WIDTH) return;
    const uint b = index / WIDTH, i = index % WIDTH;
    const uint k = i - FIRST;                 // wraps around (huge) for i < FIRST
    dst[b * DST_STRIDE + DST_OFFSET + i] = k < COUNT ? src[b * SRC_STRIDE + SRC_OFFSET + k] : 0.0;
}
