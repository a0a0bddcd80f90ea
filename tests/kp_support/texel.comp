#version 450
// Uniform texel buffers of each sampled type, interleaved with a storage buffer (patch 0008): quad q
// of the result is f[q] + 100 i[q] + 10000 u[q]; the last value is f's texel count.
layout(local_size_x = 1) in;
layout(set = 0, binding = 0) uniform samplerBuffer f;
layout(set = 0, binding = 1) writeonly buffer Result { float result[]; };
layout(set = 0, binding = 2) uniform isamplerBuffer i;
layout(set = 0, binding = 3) uniform usamplerBuffer u;

void main() {
    const int q = int(gl_GlobalInvocationID.x);
    const vec4 v = texelFetch(f, q) + 100.0 * vec4(texelFetch(i, q)) + 10000.0 * vec4(texelFetch(u, q));
    for (int c = 0; c < 4; ++c) result[4 * q + c] = v[c];
    if (q == 0) result[result.length() - 1] = float(textureSize(f));
}
