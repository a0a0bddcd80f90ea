#version 450
#extension GL_GOOGLE_include_directive : require
// One Elman RNN time step backward: da = dh * (1 - h'^2) (tanh) or dh * [h' > 0] (relu), from the
// saved state h'.
#define GATES 1
#define SAVED_GATES 1
#define HIDDEN_COLUMN(row) (row)
#include "backward_step.glsl"

layout(constant_id = 6) const bool RELU = false;

layout(set = 0, binding = 9) readonly buffer H { float h[]; };   // (B, T + 1, H)

float cell_backward(uint b, uint j, uint t, float dh) {
    const float next = h[state_at(b, t + 1) + j];
    dgates[dgates_at(b, t) + j] = RELU ? (next > 0.0 ? dh : 0.0) : dh * (1.0 - next * next);
    return 0.0;
}
