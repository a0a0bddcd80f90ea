// One time step of a recurrent layer's forward pass; the including shader defines GATES (rows of
// W_hh per hidden unit) and the cell: `cell_step` and `cell_carry` below.
//
//   t < length:  h_{t+1} = cell(x_t W_ih^T + b_ih, h_t), y_t = h_{t+1}
//   otherwise:   h_{t+1} = h_t, y_t = 0 (pack_padded_sequence semantics: the final state is the
//                state after the last valid step)

#include "sequence.glsl"

layout(constant_id = 5) const bool HAS_BIAS = true;

layout(set = 0, binding = 4) readonly buffer Projected { float projected[]; }; // (B, T, GATES*H): x W_ih^T + b_ih
layout(set = 0, binding = 5) readonly buffer BiasHH { float bias_hh[]; };
layout(set = 0, binding = 6) buffer H { float h[]; };                          // (B, T + 1, H): h_0 .. h_T
layout(set = 0, binding = 7) writeonly buffer Y { float y[]; };                // (B, OUT_STRIDE): y_t at t*H
layout(set = 0, binding = 8) readonly buffer H4 { vec4 h4[]; };                 // h and W_hh as whole quads:
layout(set = 0, binding = 9) readonly buffer WeightHH4 { vec4 weight_hh4[]; };  // their rows, where HIDDEN % 4 == 0

// The input part of gate row `row` (= gate * H + j) at step t: every step's came from one GEMM.
float projected_at(uint b, uint t, uint row) {
    return projected[(b * STEPS + t) * (GATES * HIDDEN) + row];
}

// W_hh[row] . h_t + b_hh[row]: the recurrent part of a gate's pre-activation. On quads where the
// rows are whole quads: on lavapipe each load instruction costs about what one value does.
float recurrent(uint b, uint t, uint row) {
    const uint w = row * HIDDEN, s = state_at(b, t);
    float sum = HAS_BIAS ? bias_hh[row] : 0.0;
    if (HIDDEN % 4 == 0) {   // a specialization constant: one branch is compiled
        vec4 quads = vec4(0.0);
        for (uint k4 = 0; k4 < HIDDEN / 4; ++k4) quads = fma(weight_hh4[w / 4 + k4], h4[s / 4 + k4], quads);
        return sum + ((quads.x + quads.y) + (quads.z + quads.w));
    }
    for (uint k = 0; k < HIDDEN; ++k) sum = fma(weight_hh[w + k], h[s + k], sum);
    return sum;
}

// The cell: h_{t+1}[j] of sample b, saving what its backward needs (gates, other state).
float cell_step(uint b, uint j, uint t);
// A step past the sample's length: the cell's other state (LSTM's c) carries over (NaN if invalid).
void cell_carry(uint b, uint j, uint t, bool invalid);

void main() {
    const uint i = flat_index();
    const int t = tick(i, 1);
    if (i >= BATCH * HIDDEN) return;
    const uint b = i / HIDDEN, j = i % HIDDEN;
    const int length = sample_length(b);
    float next, out_value;
    if (t < length) {
        next = out_value = cell_step(b, j, uint(t));
    } else {
        cell_carry(b, j, uint(t), length < 0);
        next = length < 0 ? NAN : h[state_at(b, t) + j];
        out_value = length < 0 ? NAN : 0.0;
    }
    h[state_at(b, t + 1) + j] = next;
    y[b * OUT_STRIDE + t * HIDDEN + j] = out_value;
}
