// One time step of a recurrent layer's forward pass; the including shader defines GATES (rows of
// W_hh per hidden unit) and the cell: `cell_step` and `cell_carry` below.
//
//   t < length:  h_{t+1} = cell(x_t W_ih^T + b_ih, h_t), y_t = h_{t+1}
//   otherwise:   h_{t+1} = h_t, y_t = 0 (pack_padded_sequence semantics: the final state is the
//                state after the last valid step)

#include "sequence.glsl"
#include "../common/vec4_input.glsl"

layout(constant_id = 5) const bool HAS_BIAS = true;

layout(set = 0, binding = 4) readonly buffer Projected { float projected[]; }; // (B, T, GATES*H): x W_ih^T + b_ih
layout(set = 0, binding = 5) readonly buffer BiasHH { float bias_hh[]; };
layout(set = 0, binding = 6) buffer H { float h[]; };                          // (B, T + 1, H): h_0 .. h_T
layout(set = 0, binding = 7) writeonly buffer Y { float y[]; };                // (B, OUT_STRIDE): y_t at t*H
layout(set = 0, binding = 8) readonly buffer H4 { vec4 h4[]; };   // h and W_hh as whole quads: their rows,
VEC4_INPUT(9, WeightHH4, weight_hh4);                              // where HIDDEN % 4 == 0

// The input part of gate row `row` (= gate * H + j) at step t: every step's came from one GEMM.
float projected_at(uint b, uint t, uint row) {
    return projected[(b * STEPS + t) * (GATES * HIDDEN) + row];
}

// W_hh[g H + j] . h_t + b_hh[g H + j] for every gate g: the recurrent parts of unit j's gate
// pre-activations. On quads where the rows are whole quads, each quad of h_t loaded once for all
// the gates: on lavapipe each load instruction costs about what one value does (and W_hh is read
// as texels there, common/vec4_input.glsl).
void recurrent(uint b, uint t, uint j, out float sums[GATES]) {
    const uint s = state_at(b, t);
    if (HIDDEN % 4 == 0) {   // a specialization constant: one branch is compiled
        vec4 quads[GATES];
        for (uint g = 0; g < GATES; ++g) quads[g] = vec4(0.0);
        for (uint k4 = 0; k4 < HIDDEN / 4; ++k4) {
            const vec4 state = h4[s / 4 + k4];
            for (uint g = 0; g < GATES; ++g)
                quads[g] = fma(LOAD4(weight_hh4, (g * HIDDEN + j) * (HIDDEN / 4) + k4), state, quads[g]);
        }
        for (uint g = 0; g < GATES; ++g) {
            const float bias = HAS_BIAS ? bias_hh[g * HIDDEN + j] : 0.0;
            sums[g] = bias + quad_sum(quads[g]);
        }
        return;
    }
    for (uint g = 0; g < GATES; ++g) {
        const uint w = (g * HIDDEN + j) * HIDDEN;
        float sum = HAS_BIAS ? bias_hh[g * HIDDEN + j] : 0.0;
        for (uint k = 0; k < HIDDEN; ++k) sum = fma(weight_hh[w + k], h[s + k], sum);
        sums[g] = sum;
    }
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
