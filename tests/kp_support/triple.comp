#version 450
// c = 3b (reads what double.comp wrote: a read-after-write across dispatches)
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer B { float b[]; };
layout(set = 0, binding = 1) writeonly buffer C { float c[]; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    c[i] = 3.0 * b[i];
}
