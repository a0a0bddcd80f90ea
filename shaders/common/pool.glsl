// Window geometry of the pooling shaders (PyTorch semantics, NCHW; constants set by
// vkbackprop/layers/pool.py). Forward runs one invocation per output element and loops over its
// window; backward runs one invocation per input element and *gathers* over the outputs whose
// windows can hold it, so overlapping windows need no atomics and the sums are deterministic.
//
// Two kinds of windows along an axis:
//   sliding  (MaxPool2d, AvgPool2d): output o covers inputs o*STRIDE - PAD + t*DILATION, t < KERNEL
//   adaptive (AdaptiveAvgPool2d, `#define ADAPTIVE_WINDOWS` before the include): output o of m covers
//            inputs [floor(o*n/m), ceil((o+1)*n/m)) of n. The adaptive shaders leave the sliding
//            constants at their (unused) defaults.
// Padded positions are never part of a window here: windows are clipped to the input.

layout(constant_id = 0) const int PLANES = 1;      // batch * channels
layout(constant_id = 1) const int IN_H = 1;
layout(constant_id = 2) const int IN_W = 1;
layout(constant_id = 3) const int OUT_H = 1;
layout(constant_id = 4) const int OUT_W = 1;
layout(constant_id = 5) const int KERNEL_H = 1;
layout(constant_id = 6) const int KERNEL_W = 1;
layout(constant_id = 7) const int STRIDE_H = 1;
layout(constant_id = 8) const int STRIDE_W = 1;
layout(constant_id = 9) const int PAD_H = 0;
layout(constant_id = 10) const int PAD_W = 0;
layout(constant_id = 11) const int DILATION_H = 1;
layout(constant_id = 12) const int DILATION_W = 1;

layout(local_size_x = 256) in;
#include "index.glsl"

// Integer division rounding down / up for b > 0 (GLSL's / truncates toward zero).
int floor_div(int a, int b) { return a >= 0 ? a / b : -((b - 1 - a) / b); }
int ceil_div(int a, int b) { return -floor_div(-a, b); }

// The in-input positions of one window along an axis: first + t * step for t < count.
struct Taps { int first; int count; int step; };

Taps sliding_taps(int o, int n, int kernel, int stride, int pad, int dilation) {
    const int start = o * stride - pad;
    const int skip = start < 0 ? ceil_div(-start, dilation) : 0;       // taps in the left padding
    const int end = min(kernel, ceil_div(n - start, dilation));         // taps before the right edge
    return Taps(start + skip * dilation, max(end - skip, 0), dilation);
}

// Indices [floor(i * to / from), ceil((i + 1) * to / from)): with (from, to) = (m, n) the window of
// output i; with (from, to) = (n, m) the outputs whose windows hold input i (the same formula).
ivec2 adaptive_span(int i, int from, int to) {
    return ivec2((i * to) / from, ceil_div((i + 1) * to, from));
}

// The outputs [lo, hi) along an axis whose sliding window may hold input i: those with
// o*stride - pad <= i <= o*stride - pad + (kernel-1)*dilation. With dilation > 1 some of them skip
// i (a caller that needs exact membership checks it: max pooling compares the saved argmax).
ivec2 sliding_cover(int i, int out_size, int kernel, int stride, int pad, int dilation) {
    const int lo = ceil_div(i + pad - (kernel - 1) * dilation, stride);
    const int hi = floor_div(i + pad, stride) + 1;
    return ivec2(max(lo, 0), min(hi, out_size));
}

#ifdef ADAPTIVE_WINDOWS
Taps row_taps(int oh) { const ivec2 s = adaptive_span(oh, OUT_H, IN_H); return Taps(s.x, s.y - s.x, 1); }
Taps col_taps(int ow) { const ivec2 s = adaptive_span(ow, OUT_W, IN_W); return Taps(s.x, s.y - s.x, 1); }
ivec2 rows_covering(int ih) { return adaptive_span(ih, IN_H, OUT_H); }
ivec2 cols_covering(int iw) { return adaptive_span(iw, IN_W, OUT_W); }
#else
Taps row_taps(int oh) { return sliding_taps(oh, IN_H, KERNEL_H, STRIDE_H, PAD_H, DILATION_H); }
Taps col_taps(int ow) { return sliding_taps(ow, IN_W, KERNEL_W, STRIDE_W, PAD_W, DILATION_W); }
ivec2 rows_covering(int ih) { return sliding_cover(ih, OUT_H, KERNEL_H, STRIDE_H, PAD_H, DILATION_H); }
ivec2 cols_covering(int iw) { return sliding_cover(iw, OUT_W, KERNEL_W, STRIDE_W, PAD_W, DILATION_W); }
#endif

// (plane, row, column) of a flat index into planes of h x w.
ivec3 position(int index, int h, int w) {
    return ivec3(index / (h * w), (index / w) % h, index % w);
}
