#version 450
#extension GL_GOOGLE_include_directive : require
// dx[b, i] = sum_o dy[b, o] * weight[o, i]

layout(constant_id = 0) const uint M = 1;  // batch
layout(constant_id = 1) const uint N = 1;  // in_features
layout(constant_id = 2) const uint K = 1;  // out_features

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };
layout(set = 0, binding = 3) readonly buffer X { float x[]; };   // this layer's input: read by a fused ReLU backward only
layout(set = 0, binding = 4) readonly buffer Partials { float partials[]; };   // dx, read with ACCUMULATE only

#define A_AT(m, k) dy[(m) * K + (k)]
#define B_AT(k, n) weight[(k) * N + (n)]
#define DX_EPILOGUE_CONSTANTS 3
#include "../common/dx_epilogue.glsl"
#define STORE(m, n, v) STORE_DX(dx[(m) * N + (n)], partials[(m) * N + (n)], v, x[(m) * N + (n)])
#define GEMM_CONSTANTS 5   // the core's tile constants follow this shader's
#include "../common/gemm.glsl"
