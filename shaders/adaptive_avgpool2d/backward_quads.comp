#version 450
#extension GL_GOOGLE_include_directive : require
// AdaptiveAvgPool2d backward where windows do not overlap (each axis's input length a multiple of
// its output length, e.g. global pooling), on quads (see ../avgpool2d/backward_quads.glsl).

#define ADAPTIVE_WINDOWS
#include "../avgpool2d/backward_quads.glsl"
