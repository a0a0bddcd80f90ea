#version 450
#extension GL_GOOGLE_include_directive : require
// dst[i] = src[i]. Device-only memory cannot be written from the host: a checkpoint's optimizer
// state is uploaded into a staged scratch buffer and copied into the state buffer with this.

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer Src { float src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { float dst[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) dst[i] = src[i];
}
