#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// backward_input.comp on the vec4 + subgroup-shuffle GEMM core (common/gemm_shuffle.glsl), where
// vkbackprop/layers/recurrent.py finds it applies: input features, gate rows and dgates rows in
// whole quads.
// dx[(b, t), f] = sum_g dgates[(b, t), g] * weight_ih[g, f] over the input-side gate columns (the
// first K of each dgates row of SAVED).

layout(constant_id = 0) const uint M = 1;  // batch * steps
layout(constant_id = 1) const uint N = 1;  // input features
layout(constant_id = 2) const uint K = 1;  // gates * hidden
layout(constant_id = 3) const uint SAVED = 1;  // floats per dgates row

VEC4_INPUT(0, DGates, dgates);
VEC4_INPUT(1, WeightIH, weight_ih);
layout(set = 0, binding = 2) writeonly buffer DX { vec4 dx[]; };   // N % 4 == 0: whole quads

#define B_N_CONTIGUOUS 1
#define A_QUAD(m, k4) LOAD4(dgates, ((m) * SAVED) / 4 + (k4))
#define B4(i) LOAD4(weight_ih, i)
#define STORE(m, n, v) dx[((m) * N + (n)) / 4][(n) % 4] = (v)
#define STORE4(m, n, v) dx[((m) * N + (n)) / 4] = (v)
#define GEMM_CONSTANTS 4   // the core's tile constants follow this shader's
#include "../common/gemm_shuffle.glsl"
