#version 450
// b = 2a + 1 (first of two dependent dispatches; also fills a storage tensor)
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer A { float a[]; };
layout(set = 0, binding = 1) writeonly buffer B { float b[]; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    b[i] = 2.0 * a[i] + 1.0;
}
