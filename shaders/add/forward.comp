#version 450
#extension GL_GOOGLE_include_directive : require
// y = a + b (Add of n inputs chains n - 1 of these, the later ones with a = y)

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer A { float a[]; };
layout(set = 0, binding = 1) readonly buffer B { float b[]; };
layout(set = 0, binding = 2) writeonly buffer Y { float y[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) y[i] = a[i] + b[i];
}
