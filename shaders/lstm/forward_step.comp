#version 450
#extension GL_GOOGLE_include_directive : require
// One LSTM time step (gates i, f, g, o as in PyTorch): c' = f c + i g, h' = o tanh(c'). Saves the
// gate activations and c for backward.
#define GATES 4
#include "../rnn/forward_step.glsl"

layout(set = 0, binding = 10) buffer C { float c[]; };                   // (B, T + 1, H): c_0 .. c_T
layout(set = 0, binding = 11) writeonly buffer Gates { float gates[]; };  // (B, T, 4H): i, f, g, o

float cell_step(uint b, uint j, uint t, float a[GATES]) {
    for (uint q = 0; q < 4; ++q) a[q] = projected_at(b, t, q * HIDDEN + j) + a[q];
    const float i = vkb_sigmoid(a[0]), f = vkb_sigmoid(a[1]), g = vkb_tanh(a[2]), o = vkb_sigmoid(a[3]);
    const float c_next = fma(f, c[state_at(b, t) + j], i * g);
    c[state_at(b, t + 1) + j] = c_next;
    const uint s = (b * STEPS + t) * (4 * HIDDEN) + j;
    gates[s] = i;
    gates[s + HIDDEN] = f;
    gates[s + 2 * HIDDEN] = g;
    gates[s + 3 * HIDDEN] = o;
    return o * vkb_tanh(c_next);
}

void cell_carry(uint b, uint j, uint t, bool invalid) {
    c[state_at(b, t + 1) + j] = invalid ? NAN : c[state_at(b, t) + j];
}
