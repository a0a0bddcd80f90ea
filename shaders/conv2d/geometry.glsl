// Conv2d geometry (PyTorch semantics, NCHW), shared by the conv2d shaders: specialization constants
// 0..15 (vkbackprop/layers/conv.py binds them by name) and the index math of the implicit GEMMs.
// Tap (kh, kw) of output position (oh, ow) reads input position
//   (oh * STRIDE_H - PAD_H + kh * DILATION_H, ow * STRIDE_W - PAD_W + kw * DILATION_W),
// and positions outside the image are zero padding (PAD_* is the top/left padding; 'same' may pad
// more at the bottom/right, which the output size accounts for).

layout(constant_id = 0) const uint BATCH = 1;
layout(constant_id = 1) const uint IN_C = 1;
layout(constant_id = 2) const uint IN_H = 1;
layout(constant_id = 3) const uint IN_W = 1;
layout(constant_id = 4) const uint OUT_C = 1;
layout(constant_id = 5) const uint OUT_H = 1;
layout(constant_id = 6) const uint OUT_W = 1;
layout(constant_id = 7) const uint GROUPS = 1;
layout(constant_id = 8) const uint KERNEL_H = 1;
layout(constant_id = 9) const uint KERNEL_W = 1;
layout(constant_id = 10) const uint STRIDE_H = 1;
layout(constant_id = 11) const uint STRIDE_W = 1;
layout(constant_id = 12) const uint PAD_H = 0;
layout(constant_id = 13) const uint PAD_W = 0;
layout(constant_id = 14) const uint DILATION_H = 1;
layout(constant_id = 15) const uint DILATION_W = 1;

const uint GROUP_IN = IN_C / GROUPS;     // input channels per group: weight's dim 1
const uint GROUP_OUT = OUT_C / GROUPS;   // output channels per group
const uint TAPS = KERNEL_H * KERNEL_W;
const uint IN_PLANE = IN_H * IN_W;
const uint OUT_PLANE = OUT_H * OUT_W;

// (i / width, i % width): a flat index as (row, column), or (sample, position) for width = a plane.
uvec2 split_index(uint i, uint width) {
    const uint row = i / width;
    return uvec2(row, i - row * width);
}

// Where tap t (< TAPS) of a window lies relative to the window's top-left corner.
ivec2 tap_offset(uint t) {
    return ivec2(split_index(t, KERNEL_W) * uvec2(DILATION_H, DILATION_W));
}

// The input position of the top-left tap of output position p's window (may lie in the padding).
ivec2 window_origin(uint p) {
    return ivec2(split_index(p, OUT_W) * uvec2(STRIDE_H, STRIDE_W)) - ivec2(PAD_H, PAD_W);
}

bool in_image(ivec2 at) {
    return uint(at.x) < IN_H && uint(at.y) < IN_W;   // negative rows/columns wrap to huge
}

// Input element `at` of the plane starting at x[plane]; zero in the padding (never read there).
// A macro, so that it needs `x` declared only where it is used.
#define INPUT_AT(plane, at) (in_image(at) ? x[(plane) + uint((at).x) * IN_W + uint((at).y)] : 0.0)
