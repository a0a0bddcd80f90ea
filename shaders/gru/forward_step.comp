#version 450
#extension GL_GOOGLE_include_directive : require
// One GRU time step (gates r, z, n as in PyTorch):
//   r = sigmoid(x_r + W_hr h + b_hr), z = sigmoid(x_z + W_hz h + b_hz),
//   n = tanh(x_n + r (W_hn h + b_hn)), h' = (1 - z) n + z h        (x_* include b_i*)
// Saves r, z, n and W_hn h + b_hn for backward.
#define GATES 3
#include "../rnn/forward_step.glsl"

layout(set = 0, binding = 10) writeonly buffer Gates { float gates[]; };  // (B, T, 4H): r, z, n, W_hn h + b_hn

float cell_step(uint b, uint j, uint t, float sums[GATES]) {
    const float r = vkb_sigmoid(projected_at(b, t, j) + sums[0]);
    const float z = vkb_sigmoid(projected_at(b, t, HIDDEN + j) + sums[1]);
    const float hn = sums[2];
    const float n = vkb_tanh(fma(r, hn, projected_at(b, t, 2 * HIDDEN + j)));
    const uint s = (b * STEPS + t) * (4 * HIDDEN) + j;
    gates[s] = r;
    gates[s + HIDDEN] = z;
    gates[s + 2 * HIDDEN] = n;
    gates[s + 3 * HIDDEN] = hn;
    return fma(z, h[state_at(b, t) + j] - n, n);
}

void cell_carry(uint b, uint j, uint t, bool invalid) {}
