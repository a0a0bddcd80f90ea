#version 450
// count = the number of iterations a loop of ITERATIONS really runs. Mesa 22's llvmpipe (lavapipe)
// silently stops the loops of an invocation after 65,535 iterations in all; newer ones do not.
// Device.loop_limit runs this once to tell which it has. The load in the loop (ones = [1, 1])
// keeps the compiler from replacing the loop by its closed form.

layout(constant_id = 0) const uint ITERATIONS = 1;

layout(set = 0, binding = 0) readonly buffer Ones { uint ones[]; };
layout(set = 0, binding = 1) writeonly buffer Count { uint count[]; };

layout(local_size_x = 1) in;

void main() {
    uint n = 0;
    for (uint i = 0; i < ITERATIONS; ++i) n += ones[i & 1u];
    count[0] = n;
}
