#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// backward_input.comp for strided convolutions on the vec4 + subgroup-shuffle GEMM core, one phase
// of dx at a time, where vkbackprop/layers/conv.py finds it applies: dilation 1, IN_H % STRIDE_H ==
// 0, IN_W % STRIDE_W == 0 with IN_W / STRIDE_W % 4 == 0, GROUP_OUT % 4 == 0, dy and weight whole
// numbers of quads.
// dx[b, g * GROUP_IN + c, ih, iw] = sum over (o, kh, kw) of
//     weight[g * GROUP_OUT + o, c, kh, kw] * dy[b, g * GROUP_OUT + o, oh, ow]
// over the outputs whose tap lands on (ih, iw): (oh, ow) * stride = (ih, iw) + padding - (kh, kw).
// Why phases: input row ih receives from tap kh only where (ih + PAD_H - kh) % STRIDE_H == 0, so a
// GEMM over all taps (backward_input_shuffle.comp) multiplies zeros for the others (3 of 4 terms for
// a 3x3 kernel at stride 2). The inputs of one phase (ih % STRIDE_H, iw % STRIDE_W) = (ph, pw) all
// receive from the same taps, kh = (ph + PAD_H) % STRIDE_H + th * STRIDE_H (and so for kw), each
// from neighbouring outputs for neighbouring inputs of the phase.
// Workgroup layer z = g * PHASES + phase: rows the group's input channels, columns (b, ih', iw') for
// the inputs (ih' * STRIDE_H + ph, iw' * STRIDE_W + pw), reduction (the phase's taps, o), o inner.
// The store may mask with x (this layer's input, a ReLU's output) and add to dx
// (common/dx_epilogue.glsl).

#include "geometry.glsl"
layout(constant_id = 16) const uint M = 1;  // GROUP_IN
layout(constant_id = 17) const uint N = 1;  // BATCH * PHASE_H * PHASE_W: the columns of each phase
layout(constant_id = 18) const uint K = 1;  // GROUP_OUT * the most taps a phase has: its longest reduction

VEC4_INPUT(0, DY, dy);
VEC4_INPUT(1, Weight, weight);
layout(set = 0, binding = 2) writeonly buffer DX { float dx[]; };
VEC4_INPUT(3, X, x);   // read by a fused ReLU backward only
layout(set = 0, binding = 4) readonly buffer Partials { float partials[]; };   // dx, read with ACCUMULATE only
#define DX_EPILOGUE_CONSTANTS 19
#include "../common/dx_epilogue.glsl"

const uint PHASES = STRIDE_H * STRIDE_W;
const uint PHASE_H = IN_H / STRIDE_H;   // the rows and columns of one phase
const uint PHASE_W = IN_W / STRIDE_W;
#define GROUP (gl_WorkGroupID.z / PHASES)
#define PHASE split_index(gl_WorkGroupID.z % PHASES, STRIDE_W)   // (ph, pw)

#define SOURCE4(q) LOAD4(dy, q)
const uint SOURCE_QUADS = BATCH * OUT_C * OUT_PLANE / 4;
#include "quads.glsl"

// The phase's first tap along each axis, and how many taps it has along each.
uvec2 first_tap() { return (PHASE + uvec2(PAD_H, PAD_W)) % uvec2(STRIDE_H, STRIDE_W); }
uvec2 tap_counts() {
    const uvec2 first = first_tap(), kernel = uvec2(KERNEL_H, KERNEL_W), stride = uvec2(STRIDE_H, STRIDE_W);
    return mix(uvec2(0), (kernel - first + stride - 1) / stride, lessThan(first, kernel));
}

// Term k of the phase's reduction: (its tap (kh, kw), output channel o).
struct Term { uvec2 tap; uint o; };
Term term(const uint k) {
    const uvec2 tap_o = split_index(k, GROUP_OUT);
    return Term(first_tap() + split_index(tap_o.x, tap_counts().y) * uvec2(STRIDE_H, STRIDE_W), tap_o.y);
}

// A[m][4k4 .. 4k4 + 3]: the weights of four neighbouring output channels at one tap (GROUP_OUT % 4 == 0).
vec4 weight_quad(const uint m, const uint k4) {
    const Term t = term(4 * k4);
    vec4 a;
    [[unroll]] for (uint q = 0; q < 4; ++q) {
        const uint i = ((GROUP * GROUP_OUT + t.o + q) * GROUP_IN + m) * TAPS + t.tap.x * KERNEL_W + t.tap.y;
        a[q] = LOAD1(weight, i);
    }
    return a;
}

// B[k][n0 .. n0 + 3]: dy of term k's channel at the outputs its tap takes to the phase's columns
// n0 .. n0 + 3, neighbours in one row of the phase: neighbouring outputs of one output row.
vec4 upstream_quad(const uint k, const uint n0) {
    const Term t = term(k);
    const uvec2 sample_position = split_index(n0, PHASE_H * PHASE_W);
    // (ih', iw') + ((ph, pw) + padding - tap) / stride: the division is exact by the choice of taps.
    const ivec2 at = ivec2(split_index(sample_position.y, PHASE_W))
                     + (ivec2(PHASE + uvec2(PAD_H, PAD_W)) - ivec2(t.tap)) / ivec2(STRIDE_H, STRIDE_W);
    const uint plane = (sample_position.x * OUT_C + GROUP * GROUP_OUT + t.o) * OUT_PLANE;
    return image_quad(int(plane) + at.x * int(OUT_W) + at.y, at, OUT_H, OUT_W, 1);
}

// dx's flat index of input channel m of the group at the phase's column n.
uint input_index(const uint m, const uint n) {
    const uvec2 sample_position = split_index(n, PHASE_H * PHASE_W);
    const uvec2 at = split_index(sample_position.y, PHASE_W) * uvec2(STRIDE_H, STRIDE_W) + PHASE;
    return (sample_position.x * IN_C + GROUP * GROUP_IN + m) * IN_PLANE + at.x * IN_W + at.y;
}

#define B_N_CONTIGUOUS 1
#define A_QUAD(m, k4) weight_quad(m, k4)
#define B_ROW4(k, n0) upstream_quad(k, n0)
#define K4_FIRST 0
#define K4_LAST (GROUP_OUT * tap_counts().x * tap_counts().y / 4)
#define STORE(m, n, v) STORE_DX(dx[input_index(m, n)], partials[input_index(m, n)], v, LOAD1(x, input_index(m, n)))
#define GEMM_CONSTANTS 21   // the core's tile constants follow this shader's
#include "../common/gemm_shuffle.glsl"
