#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Peak arithmetic: ITERATIONS steps of 4 independent vec4 FMA chains per invocation, all in
// registers (no memory traffic in the loop): 4 chains x 4 lanes x 2 FLOPs = 32 FLOPs per step.
// The chains start from and scale by values read at run time and the result is written, so the
// compiler can neither fold nor drop them. Four vec4s (16 floats) keep enough chains in flight to
// hide FMA latency without spilling on 256-bit lavapipe (16 AVX2 registers). The loop body holds
// UNROLL steps: on lavapipe each loop iteration costs about as much as 16 vec4 FMAs (it keeps a
// per-lane mask), so one step per iteration measured half the peak (65 vs 126 GFLOP/s, 2 cores).

layout(constant_id = 0) const uint ITERATIONS = 1024;
#define UNROLL 8

layout(set = 0, binding = 0) readonly buffer Seed { float seed[]; };   // [scale, offset]
layout(set = 0, binding = 1) writeonly buffer Out { float result[]; };

layout(local_size_x = 64) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    const vec4 scale = vec4(seed[0]);
    const vec4 offset = vec4(seed[1]);
    vec4 a = vec4(float(i)), b = a + 1.0, c = a + 2.0, d = a + 3.0;
    for (uint k = 0; k < ITERATIONS / UNROLL; ++k) {
        [[unroll]] for (uint u = 0; u < UNROLL; ++u) {
            a = fma(a, scale, offset);
            b = fma(b, scale, offset);
            c = fma(c, scale, offset);
            d = fma(d, scale, offset);
        }
    }
    for (uint k = 0; k < ITERATIONS % UNROLL; ++k) {
        a = fma(a, scale, offset);
        b = fma(b, scale, offset);
        c = fma(c, scale, offset);
        d = fma(d, scale, offset);
    }
    result[i] = dot(a + b + c + d, vec4(1.0));
}
