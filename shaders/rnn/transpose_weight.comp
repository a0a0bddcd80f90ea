#version 450
#extension GL_GOOGLE_include_directive : require
// weight_hh_t[j, r] = weight_hh[r, j]: W_hh^T, whose rows the backward step reads as quads
// (rnn/backward_step.glsl). Once per backward pass, one invocation per element.

layout(constant_id = 0) const uint ROWS = 1;     // GATES * HIDDEN
layout(constant_id = 1) const uint HIDDEN = 1;

layout(set = 0, binding = 0) readonly buffer WeightHH { float weight_hh[]; };
layout(set = 0, binding = 1) writeonly buffer WeightHHT { float weight_hh_t[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < ROWS * HIDDEN) weight_hh_t[(i % HIDDEN) * ROWS + i / HIDDEN] = weight_hh[i];
}
