#extension GL_EXT_control_flow_attributes : require
// Four values along a row of one plane of an image (x or dy), read as vec4 quads: the B quads of the
// convolution shaders on the vec4 + subgroup-shuffle GEMM core (*_shuffle.comp).
//
// The includer defines SOURCE4(q), quad q of the image's buffer (common/vec4_input.glsl's LOAD4),
// and SOURCE_QUADS, how many quads it holds (its size is a multiple of 4: conv.py checks).
//
// Why quads: llvmpipe (lavapipe) pays for each load instruction, not for each value. Four values of
// one row lie in at most two quads when they are neighbours (stride 1): two fetches and a funnel
// shift, where the scalar core (common/gemm.glsl) loads them one by one.

// The quad holding flat index i (any int: clamped into the buffer; what lies outside is masked).
vec4 source_quad(const int q) {
    return SOURCE4(clamp(q, 0, int(SOURCE_QUADS) - 1));
}

// image[i], the value at position `at` (row, column) of a height x width plane; 0 outside it.
float image_value(const int i, const ivec2 at, const uint height, const uint width) {
    return uint(at.x) < height && uint(at.y) < width ? source_quad(i >> 2)[i & 3] : 0.0;   // < 0 wraps
}

// image[start + j * step] for j = 0..3, where `start` is the flat index of position `at` (row, column)
// of a height x width plane: 0 where the row, or column at.y + j * step, lies outside the plane.
vec4 image_quad(const int start, const ivec2 at, const uint height, const uint width, const uint step) {
    if (step != 1) {   // a specialization constant: one branch is compiled
        vec4 v;
        [[unroll]] for (int j = 0; j < 4; ++j)
            v[j] = image_value(start + j * int(step), at + ivec2(0, j * int(step)), height, width);
        return v;
    }
    const int r = start & 3;   // start's place in its quad (two's complement: floor modulo)
    const vec4 lo = source_quad(start >> 2), hi = source_quad((start >> 2) + 1);
    const vec4 v = r == 0 ? lo : r == 1 ? vec4(lo.yzw, hi.x) : r == 2 ? vec4(lo.zw, hi.xy) : vec4(lo.w, hi.xyz);
    const bvec4 inside = lessThan(uvec4(at.y + ivec4(0, 1, 2, 3)), uvec4(width));
    return uint(at.x) < height ? mix(vec4(0.0), v, inside) : vec4(0.0);
}
