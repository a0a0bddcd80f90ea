#version 450
#extension GL_GOOGLE_include_directive : require
// dweight[v, d] = sum of dy[p, d] over the positions p whose token is v, gathered by the one
// invocation that owns (v, d) in position order: deterministic, no float atomics. The padding
// row (PADDING_IDX >= 0) gets no gradient, as in PyTorch.

layout(constant_id = 0) const uint POSITIONS = 1;
layout(constant_id = 1) const uint DIM = 1;
layout(constant_id = 2) const uint NUM_EMBEDDINGS = 1;
layout(constant_id = 3) const int PADDING_IDX = -1;
layout(constant_id = 4) const uint NUMEL = 1;           // NUM_EMBEDDINGS * DIM

layout(set = 0, binding = 0) readonly buffer Tokens { float tokens[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) writeonly buffer DWeight { float dweight[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"
#include "token.glsl"

void main() {
    const uint i = flat_index();
    if (i >= NUMEL) return;
    const int v = int(i / DIM);
    const uint d = i % DIM;
    float sum = 0.0;
    if (v != PADDING_IDX)
        for (uint p = 0; p < POSITIONS; ++p)
            if (token_at(p) == v) sum += dy[p * DIM + d];
    dweight[i] = sum;
}
