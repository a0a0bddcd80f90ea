#version 450
#extension GL_GOOGLE_include_directive : require
// One GRU time step backward, from the saved r, z, n, hn = W_hn h + b_hn and the state h:
//   d(n pre) = dh (1 - z)(1 - n^2),  d(r pre) = d(n pre) hn r(1-r),  d(z pre) = dh (h - n) z(1-z),
//   dL/d(hn) = d(n pre) r (the hidden side of n), and dh z reaches h directly.
// dgates columns: r, z, n (the input side) and hn; W_hh's rows r, z, n pair with columns r, z, hn.
#define GATES 3
#define SAVED_GATES 4
#define HIDDEN_COLUMN(row) ((row) < 2 * HIDDEN ? (row) : (row) + HIDDEN)
#include "../rnn/backward_step.glsl"

layout(set = 0, binding = 9) readonly buffer H { float h[]; };           // (B, T + 1, H)
layout(set = 0, binding = 10) readonly buffer Gates { float gates[]; };   // (B, T, 4H)

float cell_backward(uint b, uint j, uint t, float dh) {
    const uint s = dgates_at(b, t) + j;
    const float r = gates[s], z = gates[s + HIDDEN], n = gates[s + 2 * HIDDEN], hn = gates[s + 3 * HIDDEN];
    const float dn = dh * (1.0 - z) * (1.0 - n * n);
    dgates[s] = dn * hn * r * (1.0 - r);
    dgates[s + HIDDEN] = dh * (h[state_at(b, t) + j] - n) * z * (1.0 - z);
    dgates[s + 2 * HIDDEN] = dn;
    dgates[s + 3 * HIDDEN] = dn * r;
    return dh * z;
}
