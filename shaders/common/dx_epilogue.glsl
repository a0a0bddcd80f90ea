// The input-gradient GEMMs' epilogue (Linear and Conv2d), two things plan.py may fold into the
// store of dx, each a specialization constant (off: nothing is read but what the GEMM reads):
//   RELU_BACKWARD  the backward of a ReLU that precedes the layer (plan.py `_backward_fusions`). x,
//                  the layer's input, is that ReLU's output, so x > 0 ? v : 0 is the ReLU's input
//                  gradient, selected as relu/backward.comp does;
//   ACCUMULATE     dx already holds earlier consumers' partials of the gradient (plan.py's
//                  GradientRouter): add this one in, total + part as graph/accumulate.comp adds,
//                  instead of storing it apart for an accumulate dispatch.
// No bits change either way. The includer defines DX_EPILOGUE_CONSTANTS, the first of two free
// constant_ids, and declares dx readable (not writeonly).
#ifndef DX_EPILOGUE_CONSTANTS
#error "define DX_EPILOGUE_CONSTANTS (the first of two free constant_ids) before including dx_epilogue.glsl"
#endif
layout(constant_id = DX_EPILOGUE_CONSTANTS) const bool RELU_BACKWARD = false;
layout(constant_id = DX_EPILOGUE_CONSTANTS + 1) const bool ACCUMULATE = false;

#define RELU_MASKED(v, x) (RELU_BACKWARD ? ((x) > 0.0 ? (v) : 0.0) : (v))
#define RELU_MASKED4(v, x) (RELU_BACKWARD ? mix(vec4(0.0), (v), greaterThan((x), vec4(0.0))) : (v))
// Store v (a float, or a vec4 with STORE_DX4) into `target`, an element (quad) of dx, whose input
// element (quad) is x.
#define STORE_DX(target, v, x) target = ACCUMULATE ? (target) + RELU_MASKED(v, x) : RELU_MASKED(v, x)
#define STORE_DX4(target, v, x) target = ACCUMULATE ? (target) + RELU_MASKED4(v, x) : RELU_MASKED4(v, x)
