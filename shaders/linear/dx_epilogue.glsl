// The input-gradient GEMMs' epilogue: the backward of a ReLU that precedes this Linear, fused in by
// the scheduler (plan.py `_backward_fusions`). x, this layer's input, is that ReLU's output, so
// dx = x > 0 ? v : 0 is the ReLU's input gradient, selected as relu/backward.comp does (no bits
// change). Macros, so x is not read at all when the constant is off.
// The includer declares constant_ids 0-2.
layout(constant_id = 3) const bool RELU_BACKWARD = false;

#define RELU_MASKED(v, x) (RELU_BACKWARD ? ((x) > 0.0 ? (v) : 0.0) : (v))
#define RELU_MASKED4(v, x) (RELU_BACKWARD ? mix(vec4(0.0), (v), greaterThan((x), vec4(0.0))) : (v))
