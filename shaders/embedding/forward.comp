#version 450
#extension GL_GOOGLE_include_directive : require
// y[p, d] = weight[token_p, d]. Tokens arrive as floats (model inputs are float arrays); one that
// is not an integer in [0, NUM_EMBEDDINGS) gives a NaN row, so the loss is NaN and a Trainer raises.

layout(constant_id = 0) const uint NUMEL = 1;           // batch * tokens per sample * DIM
layout(constant_id = 1) const uint DIM = 1;             // embedding_dim
layout(constant_id = 2) const uint NUM_EMBEDDINGS = 1;

layout(set = 0, binding = 0) readonly buffer Tokens { float tokens[]; };
layout(set = 0, binding = 1) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 2) writeonly buffer Y { float y[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"
#include "token.glsl"

void main() {
    const uint i = flat_index();
    if (i >= NUMEL) return;
    const int token = token_at(i / DIM);
    y[i] = token < 0 ? uintBitsToFloat(0x7fc00000u) : weight[uint(token) * DIM + i % DIM];
}
