#version 450
#extension GL_GOOGLE_include_directive : require
// One LSTM time step backward, from the saved gates and c:
//   dc = dc' + dh o (1 - tanh(c')^2),  dc_prev = dc f,
//   d(i, f, g, o pre-activations) = (dc g i(1-i), dc c f(1-f), dc i (1-g^2), dh tanh(c') o(1-o)).
#define GATES 4
#define SAVED_GATES 4
#define HIDDEN_COLUMN(row) (row)
#include "../rnn/backward_step.glsl"

layout(set = 0, binding = 9) readonly buffer C { float c[]; };           // (B, T + 1, H)
layout(set = 0, binding = 10) readonly buffer Gates { float gates[]; };   // (B, T, 4H)
layout(set = 0, binding = 11) buffer DCCarry { float dc_carry[]; };       // (B, H): dL/dc_{t+1}, then dL/dc_t

float cell_backward(uint b, uint j, uint t, float dh) {
    const uint s = dgates_at(b, t) + j;
    const float i = gates[s], f = gates[s + HIDDEN], g = gates[s + 2 * HIDDEN], o = gates[s + 3 * HIDDEN];
    const float tc = vkb_tanh(c[state_at(b, t + 1) + j]);
    const uint u = b * HIDDEN + j;
    const float dc = dc_carry[u] + dh * o * (1.0 - tc * tc);
    dgates[s] = dc * g * i * (1.0 - i);
    dgates[s + HIDDEN] = dc * c[state_at(b, t) + j] * f * (1.0 - f);
    dgates[s + 2 * HIDDEN] = dc * i * (1.0 - g * g);
    dgates[s + 3 * HIDDEN] = dh * tc * o * (1.0 - o);
    dc_carry[u] = dc * f;
    return 0.0;
}
