#version 450
#extension GL_GOOGLE_include_directive : require
// Memory bandwidth: dst = src, one vec4 (16 bytes read, 16 written) per invocation.

layout(constant_id = 0) const uint NUMEL = 1;   // vec4s

layout(set = 0, binding = 0) readonly buffer Src { vec4 src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { vec4 dst[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) dst[i] = src[i];
}
