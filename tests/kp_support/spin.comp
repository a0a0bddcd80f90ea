#version 450
// A deliberately long dispatch: iterate the LCG x -> 1664525 x + 1013904223 (mod 2^32) iters[0]
// times, starting from the invocation index. The count comes from a buffer, so the compiler cannot fold
// the loop, and the result has a closed form the test checks against. Lavapipe (gallivm) ends any loop
// after 65535 iterations, so the dispatch is made long with many workgroups, not more iterations.
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer Params { uint iters[]; };
layout(set = 0, binding = 1) writeonly buffer Out { uint result[]; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    uint x = i;
    uint n = iters[0];
    for (uint k = 0u; k < n; ++k) {
        x = x * 1664525u + 1013904223u;
    }
    result[i] = x;
}
