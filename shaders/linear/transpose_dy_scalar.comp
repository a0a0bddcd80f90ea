#version 450
// transpose_dy.comp for out_features that are no multiple of 4: dyt[o, b] = dy[b, o], one
// invocation per output feature, float by float. With HAS_BIAS it also writes
// dbias[o] = sum_b dy[b, o], summed over b = 0, 1, ... like backward_bias.comp.

layout(constant_id = 0) const uint B = 1;  // batch
layout(constant_id = 1) const uint N = 1;  // out_features
layout(constant_id = 2) const bool HAS_BIAS = true;

layout(set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 1) writeonly buffer DYT { float dyt[]; };
layout(set = 0, binding = 2) writeonly buffer DBias { float dbias[]; };

layout(local_size_x = 16) in;

void main() {
    const uint o = gl_GlobalInvocationID.x;
    if (o >= N) return;
    float sum = 0.0;
    for (uint b = 0; b < B; ++b) {
        const float v = dy[b * N + o];
        dyt[o * B + b] = v;
        sum += v;
    }
    if (HAS_BIAS) dbias[o] = sum;
}
