// One time step of a recurrent layer's forward pass; the including shader defines GATES (rows of
// W_hh per hidden unit) and the cell: `cell_step` and `cell_carry` below.
//
//   t < length:  h_{t+1} = cell(x_t W_ih^T + b_ih, h_t), y_t = h_{t+1}
//   otherwise:   h_{t+1} = h_t, y_t = 0 (pack_padded_sequence semantics: the final state is the
//                state after the last valid step)

#include "sequence.glsl"
#include "../common/vec4_input.glsl"

layout(constant_id = 6) const bool HAS_BIAS = true;

layout(set = 0, binding = 4) readonly buffer Projected { float projected[]; }; // (B, T, GATES*H): x W_ih^T + b_ih
layout(set = 0, binding = 5) readonly buffer BiasHH { float bias_hh[]; };
layout(set = 0, binding = 6) buffer H { float h[]; };                          // (B, T + 1, H): h_0 .. h_T
layout(set = 0, binding = 7) writeonly buffer Y { float y[]; };                // (B, OUT_STRIDE): y_t at t*H
// h and W_hh as whole quads, their rows, where HIDDEN % 4 == 0. A step reads the h_t the previous
// dispatch wrote, never the h_{t+1} this one writes.
VEC4_INPUT(8, H4, h4);
VEC4_INPUT(9, WeightHH4, weight_hh4);

// The input part of gate row `row` (= gate * H + j) at step t: every step's came from one GEMM.
float projected_at(uint b, uint t, uint row) {
    return projected[(b * STEPS + t) * (GATES * HIDDEN) + row];
}

// W_hh[g H + j] . h_t + b_hh[g H + j] for every gate g and each sample of the block from `first`:
// the recurrent parts of unit j's gate pre-activations. On quads where the rows are whole quads,
// each quad of W_hh loaded once for the block's samples and each quad of h_t once for all the
// gates: on lavapipe each load instruction costs about what one value does (and W_hh is read as
// texels there, common/vec4_input.glsl). Each sample's sum runs in the same order whatever SAMPLES.
void recurrent(uint first, uint t, uint j, out float sums[SAMPLES][GATES]) {
    if (HIDDEN % 4 == 0) {   // a specialization constant: one branch is compiled
        vec4 quads[SAMPLES][GATES];
        for (uint s = 0; s < SAMPLES; ++s)
            for (uint g = 0; g < GATES; ++g) quads[s][g] = vec4(0.0);
        for (uint k4 = 0; k4 < HIDDEN / 4; ++k4) {
            vec4 weights[GATES];
            for (uint g = 0; g < GATES; ++g) weights[g] = LOAD4(weight_hh4, (g * HIDDEN + j) * (HIDDEN / 4) + k4);
            for (uint s = 0; s < SAMPLES; ++s) {
                const vec4 state = LOAD4(h4, state_at(block_sample(first, s), t) / 4 + k4);
                for (uint g = 0; g < GATES; ++g) quads[s][g] = fma(weights[g], state, quads[s][g]);
            }
        }
        for (uint g = 0; g < GATES; ++g) {
            const float bias = HAS_BIAS ? bias_hh[g * HIDDEN + j] : 0.0;
            for (uint s = 0; s < SAMPLES; ++s) sums[s][g] = bias + quad_sum(quads[s][g]);
        }
        return;
    }
    for (uint s = 0; s < SAMPLES; ++s) {
        const uint state = state_at(block_sample(first, s), t);
        for (uint g = 0; g < GATES; ++g) {
            const uint w = (g * HIDDEN + j) * HIDDEN;
            float sum = HAS_BIAS ? bias_hh[g * HIDDEN + j] : 0.0;
            for (uint k = 0; k < HIDDEN; ++k) sum = fma(weight_hh[w + k], h[state + k], sum);
            sums[s][g] = sum;
        }
    }
}

// The cell: h_{t+1}[j] of sample b from its recurrent sums, saving what its backward needs (gates,
// other state).
float cell_step(uint b, uint j, uint t, float sums[GATES]);
// A step past the sample's length: the cell's other state (LSTM's c) carries over (NaN if invalid).
void cell_carry(uint b, uint j, uint t, bool invalid);

void main() {
    const uint i = flat_index();
    const int t = tick(i, 1);
    if (i >= step_invocations()) return;
    const uint j = i % HIDDEN, first = i / HIDDEN * SAMPLES;
    float sums[SAMPLES][GATES];
    recurrent(first, uint(t), j, sums);
    for (uint s = 0; s < SAMPLES && first + s < BATCH; ++s) {
        const uint b = first + s;
        const int length = sample_length(b);
        float next, out_value;
        if (t < length) {
            next = out_value = cell_step(b, j, uint(t), sums[s]);
        } else {
            cell_carry(b, j, uint(t), length < 0);
            next = length < 0 ? NAN : h[state_at(b, t) + j];
            out_value = length < 0 ? NAN : 0.0;
        }
        h[state_at(b, t + 1) + j] = next;
        y[b * OUT_STRIDE + t * HIDDEN + j] = out_value;
    }
}
