#version 450
#extension GL_GOOGLE_include_directive : require
// The first step of the weight gradient by chains (backward_chains.comp): per position p, the next
// position holding the same token (POSITIONS if none) and whether p is its token's first. The
// positions of one token then form a chain in position order, walked once per row instead of
// every row scanning every position (backward.comp): positions^2 token reads, not vocabulary x
// positions / G. Positions whose token is invalid (token_at: -1) link nowhere and head nothing.

layout(constant_id = 0) const uint POSITIONS = 1;
layout(constant_id = 1) const uint NUM_EMBEDDINGS = 1;

layout(set = 0, binding = 0) readonly buffer Tokens { float tokens[]; };
layout(set = 0, binding = 1) writeonly buffer Next { uint next[]; };    // (POSITIONS,)
layout(set = 0, binding = 2) writeonly buffer Heads { uint heads[]; };  // (POSITIONS,): 1 for a first position

layout(local_size_x = 64) in;
#include "../common/index.glsl"
#include "token.glsl"

void main() {
    const uint p = flat_index();
    if (p >= POSITIONS) return;
    const int v = token_at(p);
    uint q = p + 1;
    while (v >= 0 && q < POSITIONS && token_at(q) != v) ++q;
    uint before = 0;
    while (v >= 0 && before < p && token_at(before) != v) ++before;
    next[p] = v >= 0 ? q : POSITIONS;
    heads[p] = (v >= 0 && before == p) ? 1u : 0u;
}
