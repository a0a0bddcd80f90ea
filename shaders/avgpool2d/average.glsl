// The divisor of each output's window sum, shared by AvgPool2d and AdaptiveAvgPool2d (which
// defines ADAPTIVE_WINDOWS: it divides by its window's size). AvgPool2d's shaders declare
// COUNT_INCLUDE_PAD and DIVISOR_OVERRIDE (0: none) before including this.
#include "../common/pool.glsl"

#ifdef ADAPTIVE_WINDOWS
float divisor(int oh, int ow) {
    return float(row_taps(oh).count * col_taps(ow).count);
}
#else
// The window's length counting padding, but not what lies beyond the right padding (a ceil_mode
// window may reach past it): PyTorch's count_include_pad divisor.
int padded_extent(int o, int n, int kernel, int stride, int pad) {
    const int start = o * stride - pad;
    return min(start + kernel, n + pad) - start;
}

float divisor(int oh, int ow) {
    if (DIVISOR_OVERRIDE > 0) return float(DIVISOR_OVERRIDE);
    if (COUNT_INCLUDE_PAD) return float(padded_extent(oh, IN_H, KERNEL_H, STRIDE_H, PAD_H) *
                                        padded_extent(ow, IN_W, KERNEL_W, STRIDE_W, PAD_W));
    return float(row_taps(oh).count * col_taps(ow).count);
}
#endif
