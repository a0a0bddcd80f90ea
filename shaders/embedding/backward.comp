#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// dweight[v, d] = sum of dy[p, d] over the positions p whose token is v, gathered by the one
// invocation that owns (v, d) in position order: deterministic, no float atomics. An invocation
// owns G consecutive features of one row, so each token is read once per G features (the
// token reads are the cost: vocabulary x positions / G of them). The padding row (PADDING_IDX >= 0)
// gets no gradient, as in PyTorch.

layout(constant_id = 0) const uint POSITIONS = 1;
layout(constant_id = 1) const uint DIM = 1;
layout(constant_id = 2) const uint NUM_EMBEDDINGS = 1;
layout(constant_id = 3) const int PADDING_IDX = -1;
layout(constant_id = 4) const uint GROUPS = 1;           // (DIM + G - 1) / G feature groups per row

#ifndef G
#error "compile with -DG (features per invocation; vkbackprop/layers/embedding.py)"
#endif
layout(set = 0, binding = 0) readonly buffer Tokens { float tokens[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) writeonly buffer DWeight { float dweight[]; };

layout(local_size_x = 64) in;
#include "../common/index.glsl"
#include "token.glsl"

void main() {
    const uint i = flat_index();
    if (i >= NUM_EMBEDDINGS * GROUPS) return;
    const int v = int(i / GROUPS);
    const uint d0 = (i % GROUPS) * G;
    float acc[G];
    [[unroll]] for (uint g = 0; g < G; ++g) acc[g] = 0.0;
    if (v != PADDING_IDX)
        for (uint p = 0; p < POSITIONS; ++p)
            if (token_at(p) == v)
                [[unroll]] for (uint g = 0; g < G; ++g)
                    if (d0 + g < DIM) acc[g] += dy[p * DIM + d0 + g];
    [[unroll]] for (uint g = 0; g < G; ++g)
        if (d0 + g < DIM) dweight[v * DIM + d0 + g] = acc[g];
}
