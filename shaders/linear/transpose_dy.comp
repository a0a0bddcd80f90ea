#version 450
// dyt[o, b] = dy[b, o]: the [out][batch] copy of dy that the vec4 weight-gradient GEMM
// (backward_weight_shuffle.comp) reads with k contiguous, its fast layout. With HAS_BIAS it also
// writes dbias[o] = sum_b dy[b, o], summed over b = 0, 1, ... like backward_bias.comp.
// One invocation per 4 output features, moving 4 x 4 blocks as vec4 (batch and out % 4 == 0).

layout(constant_id = 0) const uint B = 1;  // batch
layout(constant_id = 1) const uint N = 1;  // out_features
layout(constant_id = 2) const bool HAS_BIAS = true;

layout(set = 0, binding = 0) readonly buffer DY { vec4 dy[]; };
layout(set = 0, binding = 1) writeonly buffer DYT { vec4 dyt[]; };
layout(set = 0, binding = 2) writeonly buffer DBias { vec4 dbias[]; };

layout(local_size_x = 16) in;

void main() {
    const uint o4 = gl_GlobalInvocationID.x;   // features 4 o4 .. 4 o4 + 3
    if (o4 >= N / 4) return;
    vec4 sum = vec4(0.0);
    for (uint b4 = 0; b4 < B / 4; ++b4) {
        vec4 rows[4];   // dy[4 b4 + r][4 o4 .. 4 o4 + 3]
        for (uint r = 0; r < 4; ++r) {
            rows[r] = dy[((b4 * 4 + r) * N) / 4 + o4];
            sum += rows[r];
        }
        for (uint c = 0; c < 4; ++c)
            dyt[((o4 * 4 + c) * B) / 4 + b4] = vec4(rows[0][c], rows[1][c], rows[2][c], rows[3][c]);
    }
    if (HAS_BIAS) dbias[o4] = sum;
}
