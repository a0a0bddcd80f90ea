// Shared by the per-time-step shaders of every cell (RNN, LSTM, GRU), forward and backward: sizes,
// the step clock, sequence lengths and the layout of the saved states.
//
// One recorded dispatch serves every time step: the step t is read from a one-float clock that the
// previous step's dispatch wrote (two clock buffers, alternating), so a layer has one pipeline per
// shader however long the sequence is, and nothing is re-recorded or uploaded per step.
//
// Invocation i owns hidden unit j = i % HIDDEN of SAMPLES samples from (i / HIDDEN) * SAMPLES
// (those below BATCH): the step's weight quads are loaded once for all of them.

layout(local_size_x = 64) in;

layout(constant_id = 0) const uint BATCH = 1;
layout(constant_id = 1) const uint STEPS = 1;        // T
layout(constant_id = 2) const uint HIDDEN = 1;
layout(constant_id = 3) const uint OUT_STRIDE = 1;   // floats per sample of the output sequence (y / dy)
layout(constant_id = 4) const bool HAS_LENGTHS = false;
layout(constant_id = 5) const uint SAMPLES = 1;      // per invocation (ids from 6 on are the includers')

layout(set = 0, binding = 0) readonly buffer ClockIn { float clock_in[]; };
layout(set = 0, binding = 1) writeonly buffer ClockOut { float clock_out[]; };
layout(set = 0, binding = 2) readonly buffer Lengths { float lengths[]; };   // (B,), if HAS_LENGTHS
layout(set = 0, binding = 3) readonly buffer WeightHH { float weight_hh[]; }; // (GATES * H, H)

#include "../common/index.glsl"
#include "../common/quad_sum.glsl"
#include "../common/erf.glsl"

#define NAN uintBitsToFloat(0x7fc00000u)

// This dispatch's time step; invocation 0 hands step + direction to the next dispatch.
int tick(uint invocation, int direction) {
    const int t = int(clock_in[0]);
    if (invocation == 0) clock_out[0] = float(t + direction);
    return t;
}

// The sample's length: an integer in [1, STEPS], else -1 (invalid: the layer outputs NaN for it,
// so the loss is NaN and a Trainer raises). Without lengths every sample has STEPS steps.
int sample_length(uint b) {
    if (!HAS_LENGTHS) return int(STEPS);
    const float n = lengths[b];
    return (n >= 1.0 && n <= float(STEPS) && n == floor(n)) ? int(n) : -1;   // NaN fails every test
}

// The invocations a step needs: HIDDEN per block of SAMPLES samples.
uint step_invocations() {
    return (BATCH + SAMPLES - 1) / SAMPLES * HIDDEN;
}

// Sample s of the block from `first`, clamped into the batch: a block past its end computes (and
// never stores) the last sample's sums again rather than read out of bounds.
uint block_sample(uint first, uint s) {
    return min(first + s, BATCH - 1);
}

// First float of state s_t (t = 0..STEPS) of sample b in a (B, T + 1, H) state buffer.
uint state_at(uint b, uint t) {
    return (b * (STEPS + 1) + t) * HIDDEN;
}
