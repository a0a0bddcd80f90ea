#version 450
#extension GL_GOOGLE_include_directive : require
// total += part: adds one more partial derivative into a gradient that several consumers feed.
// The seed's rule: partials from several consumers of a value (or uses of a parameter) add.

layout(constant_id = 0) const uint NUMEL = 1;

layout(set = 0, binding = 0) readonly buffer Part { float part[]; };
layout(set = 0, binding = 1) buffer Total { float total[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) total[i] += part[i];
}
