#version 450
// dyt[o, b] = dy[b, o]: the [out][batch] copy of dy the vec4 GEMM core reads where out_features is
// no multiple of 4 (dy's rows are then not whole quads; see backward_weight_shuffle.comp). One
// invocation per output feature, float by float.

layout(constant_id = 0) const uint B = 1;  // batch
layout(constant_id = 1) const uint N = 1;  // out_features

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) writeonly buffer DYT { float dyt[]; };

layout(local_size_x = 16) in;

void main() {
    const uint o = gl_GlobalInvocationID.x;
    if (o >= N) return;
    for (uint b = 0; b < B; ++b) dyt[o * B + b] = dy[b * N + o];
}
