#version 450
#extension GL_GOOGLE_include_directive : require
// Dropout's mask, training mode: out = in * (keep ? SCALE : 0), an element kept where its random
// bits are >= THRESHOLD (= floor(p * 2^32): dropped with probability p). SCALE = 1 / (1 - p) in
// float32, as torch.nn.Dropout (in * mask, so a dropped -x gives -0 and a dropped inf gives NaN,
// like PyTorch). Forward applies it to x, backward to dy: the same constants and step buffer give
// the same mask, recomputed from (seed, step, index), never stored or drawn anew. On quads
// (common/unary_quads.glsl).
#include "../common/unary_quads.glsl"
#include "random.glsl"

layout(constant_id = 1) const uint SEED_LO = 0;
layout(constant_id = 2) const uint SEED_HI = 0;
layout(constant_id = 3) const uint THRESHOLD = 0;
layout(constant_id = 4) const float SCALE = 1.0;

layout(set = 0, binding = 4) readonly buffer Step { uint step[]; };

vec4 forward_quad(vec4 v, uint first) {
    const uint stream = dropout_stream(SEED_LO, SEED_HI, step[0]);
    const uvec4 index = first + uvec4(0, 1, 2, 3);
    const bvec4 keep = greaterThanEqual(uvec4(dropout_bits(stream, index.x), dropout_bits(stream, index.y),
                                              dropout_bits(stream, index.z), dropout_bits(stream, index.w)),
                                        uvec4(THRESHOLD));
    return v * mix(vec4(0.0), vec4(SCALE), keep);
}
