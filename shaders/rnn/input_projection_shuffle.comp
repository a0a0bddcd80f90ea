#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// input_projection.comp on the vec4 + subgroup-shuffle GEMM core (common/gemm_shuffle.glsl), where
// vkbackprop/layers/recurrent.py finds it applies: input features and gate rows in whole quads.
// projected[(b, t), g] = sum_f x[(b, t), f] * weight_ih[g, f] + bias_ih[g]

layout(constant_id = 0) const uint M = 1;  // batch * steps
layout(constant_id = 1) const uint N = 1;  // gates * hidden
layout(constant_id = 2) const uint K = 1;  // input features
layout(constant_id = 3) const bool HAS_BIAS = true;

VEC4_INPUT(0, X, x);
VEC4_INPUT(1, WeightIH, weight_ih);
layout(set = 0, binding = 2) readonly buffer BiasIH { vec4 bias_ih[]; };        // N % 4 == 0: whole quads
layout(set = 0, binding = 3) writeonly buffer Projected { vec4 projected[]; };  // N % 4 == 0: whole quads

vec4 bias_quad(const uint n) { return HAS_BIAS ? bias_ih[n / 4] : vec4(0.0); }

#define B_N_CONTIGUOUS 0
#define A4(i) LOAD4(x, i)
#define B4(i) LOAD4(weight_ih, i)
#define STORE(m, n, v) projected[((m) * N + (n)) / 4][(n) % 4] = (v) + bias_quad(n)[(n) % 4]
#define STORE4(m, n, v) projected[((m) * N + (n)) / 4] = (v) + bias_quad(n)
#define GEMM_CONSTANTS 4   // the core's tile constants follow this shader's
#include "../common/gemm_shuffle.glsl"
