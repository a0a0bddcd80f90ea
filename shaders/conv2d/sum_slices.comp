#version 450
#extension GL_GOOGLE_include_directive : require
// total[i] = sum over s of slices[s * NUMEL + i], in slice order (deterministic): the second stage
// of a reduction split into slices (split-K).

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const uint SLICES = 1;

layout(set = 0, binding = 0) readonly buffer Slices { float slices[]; };
layout(set = 0, binding = 1) writeonly buffer Total { float total[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i >= NUMEL) return;
    float sum = 0.0;
    for (uint s = 0; s < SLICES; ++s) sum += slices[s * NUMEL + i];
    total[i] = sum;
}
