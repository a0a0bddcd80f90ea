#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// Partial sums for the gradient statistics of up to 8 buffers at once (like PyTorch's foreach
// kernels: one dispatch instead of one per parameter). Workgroup (part, j) sums values<j>[i]^2 (a
// parameter's gradient, for the global norm; bit j of SQUARED set) or values<j>[i] (a loss, checked
// for NaN/Inf by guard/guard.comp) over the part-th of PARTS contiguous chunks of values<j>, into
// grad_stats[SLOT + j * PARTS + part]. Each is a fixed-order reduction (deterministic); the guard
// adds the parts in order. Several parts let a large gradient use every core (on lavapipe one
// workgroup runs on one CPU thread). Unused bindings get NUMEL<j> = 0.
// The parts split values<j>'s whole quads, read as vec4 through quads<j> (the same buffer,
// common/vec4_input.glsl); the last part also takes the 0-3 tail values after them.

layout(constant_id = 0) const uint SLOT = 0;
layout(constant_id = 1) const uint SQUARED = 0xFF;   // bit j: values<j> is summed squared
layout(constant_id = 2) const uint PARTS = 1;
layout(constant_id = 3) const uint NUMEL0 = 0;
layout(constant_id = 4) const uint NUMEL1 = 0;
layout(constant_id = 5) const uint NUMEL2 = 0;
layout(constant_id = 6) const uint NUMEL3 = 0;
layout(constant_id = 7) const uint NUMEL4 = 0;
layout(constant_id = 8) const uint NUMEL5 = 0;
layout(constant_id = 9) const uint NUMEL6 = 0;
layout(constant_id = 10) const uint NUMEL7 = 0;

layout(set = 0, binding = 0) writeonly buffer GradStats { float grad_stats[]; };
layout(set = 0, binding = 1) readonly buffer Values0 { float values0[]; };
layout(set = 0, binding = 2) readonly buffer Values1 { float values1[]; };
layout(set = 0, binding = 3) readonly buffer Values2 { float values2[]; };
layout(set = 0, binding = 4) readonly buffer Values3 { float values3[]; };
layout(set = 0, binding = 5) readonly buffer Values4 { float values4[]; };
layout(set = 0, binding = 6) readonly buffer Values5 { float values5[]; };
layout(set = 0, binding = 7) readonly buffer Values6 { float values6[]; };
layout(set = 0, binding = 8) readonly buffer Values7 { float values7[]; };
VEC4_INPUT(9, Quads0, quads0);
VEC4_INPUT(10, Quads1, quads1);
VEC4_INPUT(11, Quads2, quads2);
VEC4_INPUT(12, Quads3, quads3);
VEC4_INPUT(13, Quads4, quads4);
VEC4_INPUT(14, Quads5, quads5);
VEC4_INPUT(15, Quads6, quads6);
VEC4_INPUT(16, Quads7, quads7);

#define REDUCE_SIZE 64
layout(local_size_x = REDUCE_SIZE) in;
#include "../common/reduce.glsl"

// This invocation's share of chunk `part` of VALUES (NUMEL elements), added to `partial`.
float contribution(const vec4 v, const bool squared) { return squared ? dot(v, v) : v.x + v.y + v.z + v.w; }

#define ADD_PART(VALUES, QUADS, NUMEL, J)                                                    \
    {                                                                                          \
        const bool squared = ((SQUARED >> J) & 1u) != 0u;                                      \
        const uint chunk = (NUMEL / 4 + PARTS - 1) / PARTS;                                    \
        const uint end = min((part + 1) * chunk, NUMEL / 4);                                   \
        for (uint q = part * chunk + gl_LocalInvocationIndex; q < end; q += REDUCE_SIZE)        \
            partial += contribution(LOAD4(QUADS, q), squared);                                 \
        const uint tail = NUMEL / 4 * 4 + gl_LocalInvocationIndex;                              \
        if (part == PARTS - 1 && tail < NUMEL) partial += contribution(vec4(VALUES[tail], 0, 0, 0), squared); \
    }

void main() {
    // Buffer j along x, part along y: llvmpipe hands each CPU thread one contiguous run of the
    // flattened grid, so this order gives every thread parts of every buffer (x = part gave one
    // thread all of the largest gradients).
    const uint j = gl_WorkGroupID.x;   // uniform in the workgroup: one branch runs its loop
    const uint part = gl_WorkGroupID.y;
    float partial = 0.0;
    switch (j) {
        case 0: ADD_PART(values0, quads0, NUMEL0, 0) break;
        case 1: ADD_PART(values1, quads1, NUMEL1, 1) break;
        case 2: ADD_PART(values2, quads2, NUMEL2, 2) break;
        case 3: ADD_PART(values3, quads3, NUMEL3, 3) break;
        case 4: ADD_PART(values4, quads4, NUMEL4, 4) break;
        case 5: ADD_PART(values5, quads5, NUMEL5, 5) break;
        case 6: ADD_PART(values6, quads6, NUMEL6, 6) break;
        case 7: ADD_PART(values7, quads7, NUMEL7, 7) break;
    }
    const float total = workgroup_sum(partial);
    if (gl_LocalInvocationIndex == 0) grad_stats[SLOT + j * PARTS + part] = total;
}
