// One time step of a recurrent layer's backward pass (dispatched for t = T-1 down to -1); the
// including shader defines GATES, SAVED_GATES (columns of dgates per unit), HIDDEN_COLUMN(row)
// (the dgates column that multiplies W_hh's row) and the cell: `cell_backward` below.
//
// dh_carry holds the part of dL/dh_{t+1} that does not pass through W_hh (the initial dL/dh_n,
// what crosses a step past the sample's length, GRU's z * h path). Adding W_hh^T dgates_{t+1} and
// dy_t gives dL/dh_{t+1}; the cell turns it into dL/d(gate pre-activations) at t. The dispatch for
// t = -1 leaves dL/dh_0 in dh_carry.

#include "sequence.glsl"
#include "../common/vec4_input.glsl"

layout(set = 0, binding = 4) readonly buffer DY { float dy[]; };          // (B, OUT_STRIDE): dy_t at t*H
layout(set = 0, binding = 5) buffer DGates { float dgates[]; };           // (B, T, SAVED_GATES*H)
layout(set = 0, binding = 6) buffer DHCarry { float dh_carry[]; };        // (B, H)
// Where HIDDEN % 4 == 0 (else unused): W_hh^T, (H, GATES * H) rows of whole quads, and dgates as
// quads, both read through common/vec4_input.glsl (texels on lavapipe: the LSTM benchmark's step
// 30.5-31.0 -> 26.9-27.1 ms with dgates's). Steps read the dgates of the step the previous
// dispatch wrote, never those this one writes.
VEC4_INPUT(7, WeightHHT, weight_hh_t);
VEC4_INPUT(8, DGates4, dgates4);

uint dgates_at(uint b, uint t) {
    return (b * STEPS + t) * (SAVED_GATES * HIDDEN);
}

// (W_hh^T dgates_{t+1})[j] for each sample of the block from `first`: how h_{t+1} fed the gates of
// step t + 1. Where HIDDEN % 4 == 0 on quads of four rows: row j of W_hh^T, each quad loaded once
// for the block's samples, and the rows' dgates (HIDDEN_COLUMN keeps each gate's block of HIDDEN
// columns whole); on lavapipe each load instruction costs about what one value does. Each sample's
// sum runs in the same order whatever SAMPLES.
void through_weights(uint first, uint t_next, uint j, out float sums[SAMPLES]) {
    if (HIDDEN % 4 == 0) {   // a specialization constant: one branch is compiled
        const uint w = j * (GATES * HIDDEN / 4);
        vec4 quads[SAMPLES];
        for (uint s = 0; s < SAMPLES; ++s) quads[s] = vec4(0.0);
        for (uint r4 = 0; r4 < GATES * HIDDEN / 4; ++r4) {
            const vec4 weights = LOAD4(weight_hh_t, w + r4);
            for (uint s = 0; s < SAMPLES; ++s) {
                const uint d = dgates_at(block_sample(first, s), t_next) + HIDDEN_COLUMN(4 * r4);
                quads[s] = fma(weights, LOAD4(dgates4, d / 4), quads[s]);
            }
        }
        for (uint s = 0; s < SAMPLES; ++s) sums[s] = quad_sum(quads[s]);
        return;
    }
    for (uint s = 0; s < SAMPLES; ++s) {
        const uint d = dgates_at(block_sample(first, s), t_next);
        float sum = 0.0;
        for (uint row = 0; row < GATES * HIDDEN; ++row)
            sum = fma(weight_hh[row * HIDDEN + j], dgates[d + HIDDEN_COLUMN(row)], sum);
        sums[s] = sum;
    }
}

// The cell at a valid step t: from dh = dL/dh_{t+1}[j], writes unit j's dgates at t (and its other
// carried gradient, LSTM's dc); returns the part of dL/dh_t[j] that bypasses W_hh.
float cell_backward(uint b, uint j, uint t, float dh);

void main() {
    const uint i = flat_index();
    const int t = tick(i, -1);
    if (i >= step_invocations()) return;
    const uint j = i % HIDDEN, first = i / HIDDEN * SAMPLES;
    float through[SAMPLES];
    if (t + 1 < int(STEPS)) through_weights(first, uint(t + 1), j, through);
    for (uint s = 0; s < SAMPLES && first + s < BATCH; ++s) {
        const uint b = first + s, u = b * HIDDEN + j;
        float dh = dh_carry[u];
        if (t + 1 < int(STEPS)) dh += through[s];
        if (t < 0) {                       // done: dL/dh_0
            dh_carry[u] = dh;
        } else if (t < sample_length(b)) {
            dh += dy[b * OUT_STRIDE + t * HIDDEN + j];
            dh_carry[u] = cell_backward(b, j, uint(t), dh);
        } else {                           // h_{t+1} = h_t: the gradient passes unchanged, no gate gets any
            const uint d = dgates_at(b, t);
            for (uint q = 0; q < SAVED_GATES; ++q) dgates[d + q * HIDDEN + j] = 0.0;
            dh_carry[u] = dh;
        }
    }
}
