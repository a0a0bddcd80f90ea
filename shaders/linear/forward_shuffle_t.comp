#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// forward_shuffle.comp for a few output features: computed transposed, y^T = W x^T, so that the
// batch, not out_features, runs along the vec4 core's lanes (in_features % 4 == 0).
// y[b, o] = sum_i x[b, i] * weight[o, i] + bias[o]

layout(constant_id = 0) const uint M = 1;  // out_features
layout(constant_id = 1) const uint N = 1;  // batch
layout(constant_id = 2) const uint K = 1;  // in_features
layout(constant_id = 3) const bool HAS_BIAS = true;

VEC4_INPUT(0, X, x);
VEC4_INPUT(1, Weight, weight);
layout(set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(set = 0, binding = 3) writeonly buffer Y { float y[]; };

#define B_N_CONTIGUOUS 0
#define A4(i) LOAD4(weight, i)
#define B4(i) LOAD4(x, i)
#include "epilogue.glsl"
#define STORE(m, n, v) y[(n) * M + (m)] = activate(HAS_BIAS ? (v) + bias[m] : (v))
#define GEMM_CONSTANTS 5   // the core's tile constants follow this shader's
#include "../common/gemm_shuffle.glsl"
