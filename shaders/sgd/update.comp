#version 450
#extension GL_GOOGLE_include_directive : require
#include "../common/vec4_input.glsl"
// SGD without momentum, like torch.optim.SGD: g = grad + weight_decay * param; param -= lr * g, for
// up to 6 parameters in one dispatch (like PyTorch's foreach kernels: on lavapipe every dispatch
// costs ~20 us however small). Parameter j (param<j>, grad<j>, each also bound as whole quads:
// grad<j>_quads and param<j>_in read them, param<j>_quads writes) gets GROUPS<j> consecutive
// workgroups of the 1-D grid; its invocations loop over its quads with their count as stride, and
// the one whose loop ends exactly at the last whole quad does the 0-3 tail values (see
// common/vec4_index.glsl). Unused slots have GROUPS<j> = 0 (their bindings are never touched).
// The hyper-parameters come from the per-batch hyper buffer, so changing them never re-records the
// step. With weight_decay 0, g is grad exactly; each value is computed as a float would be.
// The quads are read through common/vec4_input.glsl: as texel buffers on lavapipe, where a storage
// load loops over the lanes (the MLP's update, timestamps: 0.50-0.53 -> 0.41-0.46 ms).

layout(constant_id = 0) const uint NUMEL0 = 0;
layout(constant_id = 1) const uint NUMEL1 = 0;
layout(constant_id = 2) const uint NUMEL2 = 0;
layout(constant_id = 3) const uint NUMEL3 = 0;
layout(constant_id = 4) const uint NUMEL4 = 0;
layout(constant_id = 5) const uint NUMEL5 = 0;
layout(constant_id = 6) const uint GROUPS0 = 0;
layout(constant_id = 7) const uint GROUPS1 = 0;
layout(constant_id = 8) const uint GROUPS2 = 0;
layout(constant_id = 9) const uint GROUPS3 = 0;
layout(constant_id = 10) const uint GROUPS4 = 0;
layout(constant_id = 11) const uint GROUPS5 = 0;

layout(set = 0, binding = 0) readonly buffer Hyper { float hyper[]; };  // [lr, weight_decay, momentum, 1 - dampening, first]
layout(set = 0, binding = 1) readonly buffer Guard { float guard[]; };  // [clip coef, total norm, bad, first bad + 1] (guard/guard.comp)
layout(set = 0, binding = 2) readonly buffer Grad0 { float grad0[]; };
layout(set = 0, binding = 3) buffer Param0 { float param0[]; };
VEC4_INPUT(4, Grad0Quads, grad0_quads);
VEC4_INPUT(5, Param0In, param0_in);
layout(set = 0, binding = 6) writeonly buffer Param0Quads { vec4 param0_quads[]; };
layout(set = 0, binding = 7) readonly buffer Grad1 { float grad1[]; };
layout(set = 0, binding = 8) buffer Param1 { float param1[]; };
VEC4_INPUT(9, Grad1Quads, grad1_quads);
VEC4_INPUT(10, Param1In, param1_in);
layout(set = 0, binding = 11) writeonly buffer Param1Quads { vec4 param1_quads[]; };
layout(set = 0, binding = 12) readonly buffer Grad2 { float grad2[]; };
layout(set = 0, binding = 13) buffer Param2 { float param2[]; };
VEC4_INPUT(14, Grad2Quads, grad2_quads);
VEC4_INPUT(15, Param2In, param2_in);
layout(set = 0, binding = 16) writeonly buffer Param2Quads { vec4 param2_quads[]; };
layout(set = 0, binding = 17) readonly buffer Grad3 { float grad3[]; };
layout(set = 0, binding = 18) buffer Param3 { float param3[]; };
VEC4_INPUT(19, Grad3Quads, grad3_quads);
VEC4_INPUT(20, Param3In, param3_in);
layout(set = 0, binding = 21) writeonly buffer Param3Quads { vec4 param3_quads[]; };
layout(set = 0, binding = 22) readonly buffer Grad4 { float grad4[]; };
layout(set = 0, binding = 23) buffer Param4 { float param4[]; };
VEC4_INPUT(24, Grad4Quads, grad4_quads);
VEC4_INPUT(25, Param4In, param4_in);
layout(set = 0, binding = 26) writeonly buffer Param4Quads { vec4 param4_quads[]; };
layout(set = 0, binding = 27) readonly buffer Grad5 { float grad5[]; };
layout(set = 0, binding = 28) buffer Param5 { float param5[]; };
VEC4_INPUT(29, Grad5Quads, grad5_quads);
VEC4_INPUT(30, Param5In, param5_in);
layout(set = 0, binding = 31) writeonly buffer Param5Quads { vec4 param5_quads[]; };

layout(local_size_x = 64) in;

vec4 sgd(const vec4 p, const vec4 grad_in, const float lr, const float weight_decay, const float coef) {
    const vec4 g = grad_in * coef + weight_decay * p;   // clipped gradient, then L2 (torch order)
    return p - lr * g;
}

// If workgroup w is one of this parameter's GROUPS, update the parameter and return; else step past them.
#define UPDATE(GRAD, GRAD_QUADS, PARAM, PARAM_IN, PARAM_QUADS, NUMEL, GROUPS)                                    \
    if (w < GROUPS) {                                                                                   \
        const uint stride = GROUPS * gl_WorkGroupSize.x;                                                \
        uint q = w * gl_WorkGroupSize.x + gl_LocalInvocationID.x;                                       \
        for (; q < NUMEL / 4; q += stride)                                                              \
            PARAM_QUADS[q] = sgd(LOAD4(PARAM_IN, q), LOAD4(GRAD_QUADS, q), lr, weight_decay, coef);  \
        if (q == NUMEL / 4)                                                                             \
            for (uint i = 4 * q; i < NUMEL; ++i)                                                        \
                PARAM[i] = sgd(vec4(PARAM[i]), vec4(GRAD[i]), lr, weight_decay, coef).x;               \
        return;                                                                                         \
    }                                                                                                   \
    w -= GROUPS;

void main() {
    if (guard[2] != 0.0) return;   // a non-finite step writes nothing
    // Read once, before the loops (the buffers may alias, so the compiler would reload them).
    const float lr = hyper[0], weight_decay = hyper[1], coef = guard[0];
    uint w = gl_WorkGroupID.x;
    UPDATE(grad0, grad0_quads, param0, param0_in, param0_quads, NUMEL0, GROUPS0)
    UPDATE(grad1, grad1_quads, param1, param1_in, param1_quads, NUMEL1, GROUPS1)
    UPDATE(grad2, grad2_quads, param2, param2_in, param2_quads, NUMEL2, GROUPS2)
    UPDATE(grad3, grad3_quads, param3, param3_in, param3_quads, NUMEL3, GROUPS3)
    UPDATE(grad4, grad4_quads, param4, param4_in, param4_quads, NUMEL4, GROUPS4)
    UPDATE(grad5, grad5_quads, param5, param5_in, param5_quads, NUMEL5, GROUPS5)
}
