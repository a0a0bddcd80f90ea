#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// dweight[v, d] = sum of dy[p, d] over the positions p whose token is v, walked along the chain
// backward_links.comp made: the invocation owning the first position of v and G consecutive
// features adds their dy rows in position order, the order of backward.comp's gather (the same
// bits), and writes v's row; rows of tokens that do not occur keep the zeros filled before. The
// padding row (PADDING_IDX >= 0) gets no gradient, as in PyTorch.

layout(constant_id = 0) const uint POSITIONS = 1;
layout(constant_id = 1) const uint DIM = 1;
layout(constant_id = 2) const uint NUM_EMBEDDINGS = 1;
layout(constant_id = 3) const int PADDING_IDX = -1;
layout(constant_id = 4) const uint GROUPS = 1;           // (DIM + G - 1) / G feature groups per row

#ifndef G
#error "compile with -DG (features per invocation; vkbackprop/layers/embedding.py)"
#endif
layout(set = 0, binding = 0) readonly buffer Tokens { float tokens[]; };
layout(set = 0, binding = 1) readonly buffer Next { uint next[]; };
layout(set = 0, binding = 2) readonly buffer Heads { uint heads[]; };
layout(set = 0, binding = 3) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 4) writeonly buffer DWeight { float dweight[]; };

layout(local_size_x = 64) in;
#include "../common/index.glsl"
#include "token.glsl"

void main() {
    const uint i = flat_index();
    if (i >= POSITIONS * GROUPS) return;
    const uint head = i / GROUPS, d0 = (i % GROUPS) * G;
    const int v = token_at(head);
    if (heads[head] == 0u || v == PADDING_IDX) return;
    float acc[G];
    [[unroll]] for (uint g = 0; g < G; ++g) acc[g] = 0.0;
    for (uint p = head; p < POSITIONS; p = next[p])
        [[unroll]] for (uint g = 0; g < G; ++g)
            if (d0 + g < DIM) acc[g] += dy[p * DIM + d0 + g];
    [[unroll]] for (uint g = 0; g < G; ++g)
        if (d0 + g < DIM) dweight[v * DIM + d0 + g] = acc[g];
}
