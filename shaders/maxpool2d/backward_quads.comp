#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// MaxPool2d backward where windows do not overlap ((KERNEL - 1) * DILATION < STRIDE on both axes)
// and input rows hold whole quads (IN_W % 4 == 0): one invocation writes 4 neighbouring inputs of
// a row as a quad. Each input lies in at most one window per axis, o = (i + PAD) / STRIDE, so its
// gradient is dy[o] if o saved it as its argmax, else 0: backward.comp's result without
// its covering loops and per-element index arithmetic (on lavapipe 5.7 -> 1.3 ms for 2x2 windows
// on 32x32x32x32). An input in no window's taps (a stride gap, a dilation hole) never is an argmax.

layout(set = 0, binding = 0) readonly buffer Argmax { uint argmax[]; };
layout(set = 0, binding = 1) readonly buffer DY { float dy[]; };
layout(set = 0, binding = 2) writeonly buffer DX4 { vec4 dx4[]; };

#include "../common/pool.glsl"

layout(constant_id = 13) const int QUAD_WINDOWS = 4;   // most windows one quad's columns meet (host-computed)

const int ROW_QUADS = IN_W / 4;

void main() {
    const int q = int(flat_index());
    if (q >= PLANES * IN_H * ROW_QUADS) return;
    const int row = q / ROW_QUADS;                     // plane * IN_H + ih
    const int ih = row % IN_H, iw = 4 * (q % ROW_QUADS);
    const int oh = (ih + PAD_H) / STRIDE_H;            // the one window row that can hold ih
    const int out_row = (row / IN_H) * OUT_H + min(oh, OUT_H - 1);
    // The windows the quad's columns fall in are consecutive from the first column's: load each
    // one's argmax and dy once, not once per column. Clamped to the last window where an input
    // lies past it: that window's argmax is before the input, so never matches it.
    const int first = (iw + PAD_W) / STRIDE_W;
    uint saved[QUAD_WINDOWS];
    float grads[QUAD_WINDOWS];
    [[unroll]] for (int j = 0; j < QUAD_WINDOWS; ++j) {
        const int o = out_row * OUT_W + min(first + j, OUT_W - 1);
        saved[j] = argmax[o];
        grads[j] = dy[o];
    }
    vec4 grad = vec4(0.0);
    [[unroll]] for (int c = 0; c < 4; ++c) {
        const int ow = (iw + c + PAD_W) / STRIDE_W;
        const int j = ow - first;
        if (saved[j] == uint(ih * IN_W + iw + c)) grad[c] = grads[j];
    }
    dx4[q] = grad;
}
