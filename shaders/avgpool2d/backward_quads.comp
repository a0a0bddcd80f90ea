#version 450
#extension GL_GOOGLE_include_directive : require
// AvgPool2d backward where windows do not overlap, on quads (see backward_quads.glsl).

layout(constant_id = 13) const bool COUNT_INCLUDE_PAD = true;   // padded positions count in the divisor
layout(constant_id = 14) const int DIVISOR_OVERRIDE = 0;        // > 0: divide by this instead

#include "backward_quads.glsl"
