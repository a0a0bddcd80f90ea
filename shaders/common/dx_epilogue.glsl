// The input-gradient GEMMs' epilogue (Linear and Conv2d), two things plan.py may fold into the
// store of dx, each a specialization constant (off: nothing is read but what the GEMM reads):
//   RELU_BACKWARD  the backward of a ReLU that precedes the layer (plan.py `_backward_fusions`). x,
//                  the layer's input, is that ReLU's output, so x > 0 ? v : 0 is the ReLU's input
//                  gradient, selected as relu/backward.comp does;
//   ACCUMULATE     dx already holds earlier consumers' partials of the gradient (plan.py's
//                  GradientRouter): add this one in, total + part as graph/accumulate.comp adds,
//                  instead of storing it apart for an accumulate dispatch. The includer binds dx a
//                  second time, read-only, as `partials` (a placeholder without ACCUMULATE: dx
//                  itself stays write-only, so a dispatch that does not add never reads it). Each
//                  element is read and then written by one invocation alone.
// No bits change either way. The includer defines DX_EPILOGUE_CONSTANTS, the first of two free
// constant_ids.
#ifndef DX_EPILOGUE_CONSTANTS
#error "define DX_EPILOGUE_CONSTANTS (the first of two free constant_ids) before including dx_epilogue.glsl"
#endif
layout(constant_id = DX_EPILOGUE_CONSTANTS) const bool RELU_BACKWARD = false;
layout(constant_id = DX_EPILOGUE_CONSTANTS + 1) const bool ACCUMULATE = false;

#define RELU_MASKED(v, x) (RELU_BACKWARD ? ((x) > 0.0 ? (v) : 0.0) : (v))
#define RELU_MASKED4(v, x) (RELU_BACKWARD ? mix(vec4(0.0), (v), greaterThan((x), vec4(0.0))) : (v))
// Store v (a float, or a vec4 with STORE_DX4) into `target`, an element (quad) of dx, whose input
// element (quad) is x and whose earlier partials (the same element of `partials`) are `partial`.
#define STORE_DX(target, partial, v, x) target = ACCUMULATE ? (partial) + RELU_MASKED(v, x) : RELU_MASKED(v, x)
#define STORE_DX4(target, partial, v, x) target = ACCUMULATE ? (partial) + RELU_MASKED4(v, x) : RELU_MASKED4(v, x)
