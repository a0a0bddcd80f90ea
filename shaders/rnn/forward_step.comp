#version 450
#extension GL_GOOGLE_include_directive : require
// One Elman RNN time step: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu). Backward needs
// only the states.
#define GATES 1
#include "forward_step.glsl"

layout(constant_id = 7) const bool RELU = false;

float cell_step(uint b, uint j, uint t, float sums[GATES]) {
    const float a = projected_at(b, t, j) + sums[0];
    return RELU ? max(a, 0.0) : vkb_tanh(a);
}

void cell_carry(uint b, uint j, uint t, bool invalid) {}
