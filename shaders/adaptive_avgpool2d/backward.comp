#version 450
#extension GL_GOOGLE_include_directive : require
// AdaptiveAvgPool2d backward: average pooling over PyTorch's adaptive windows, output o of m covering
// inputs [floor(o*n/m), ceil((o+1)*n/m)) of n, divided by the window's size.

#define ADAPTIVE_WINDOWS
#include "../avgpool2d/backward.glsl"
