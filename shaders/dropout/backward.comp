#version 450
#extension GL_GOOGLE_include_directive : require
// Dropout backward: dx = dy * (keep ? SCALE : 0), with the mask recomputed from the same
// (seed, step, index) as forward.comp (same constants, same step buffer): never drawn anew.

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const uint SEED_LO = 0;
layout(constant_id = 2) const uint SEED_HI = 0;
layout(constant_id = 3) const uint THRESHOLD = 0;
layout(constant_id = 4) const float SCALE = 1.0;

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) readonly buffer Step { uint step[]; };
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"
#include "random.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) {
        const bool keep = dropout_bits(SEED_LO, SEED_HI, step[0], i) >= THRESHOLD;
        dx[i] = dy[i] * (keep ? SCALE : 0.0);
    }
}
