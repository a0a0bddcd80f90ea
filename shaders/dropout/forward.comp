#version 450
#extension GL_GOOGLE_include_directive : require
// Dropout, training mode: y = x * (keep ? SCALE : 0), an element kept where its random bits are
// >= THRESHOLD (= floor(p * 2^32): dropped with probability p). SCALE = 1 / (1 - p) in float32, as
// torch.nn.Dropout (x * mask, so a dropped -x gives -0 and a dropped inf gives NaN, like PyTorch).

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const uint SEED_LO = 0;
layout(constant_id = 2) const uint SEED_HI = 0;
layout(constant_id = 3) const uint THRESHOLD = 0;
layout(constant_id = 4) const float SCALE = 1.0;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer Step { uint step[]; };
layout(set = 0, binding = 2) writeonly buffer Y { float y[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"
#include "random.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) {
        const bool keep = dropout_bits(SEED_LO, SEED_HI, step[0], i) >= THRESHOLD;
        y[i] = x[i] * (keep ? SCALE : 0.0);
    }
}
