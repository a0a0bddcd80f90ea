"""2-D pooling with PyTorch semantics (NCHW): MaxPool2d, AvgPool2d, AdaptiveAvgPool2d.

Forward runs one shader invocation per output element (a loop over its window); backward one per
input element, gathering over the outputs whose windows can hold it (shaders/common/pool.glsl), so
overlapping windows need no atomics and gradients are deterministic. Where windows do not overlap
(each input in at most one window per axis: 2x2 stride 2, global pooling) and input rows hold whole
quads, backward writes a quad of a row's inputs per invocation without loops (`backward_quads_shader`;
on lavapipe at 32x32x32x32, 2x2: max 5.7 -> 1.3 ms, average 4.0 -> 1.3). No parameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arguments import flag as _flag, is_int as _is_int, pair as _pair
from .base import LayerIO, Module


def _as_given(value):
    """The argument as PyTorch's repr shows it: an int stays an int, a list becomes a tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else value


def _nested_loop_iterations(outer: int, inner: int) -> int:
    """lavapipe's count for `for outer { for inner {} }`: each outer iteration counts itself, its
    inner iterations and the inner loop's exit; +1 for the outer loop's exit."""
    return outer * (inner + 2) + 1


@dataclass(frozen=True)
class SlidingWindows:
    """PyTorch's sliding windows along (H, W): output o covers inputs o*stride - padding + t*dilation,
    t < kernel. Pairs of ints, validated by the layers."""
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    ceil_mode: bool

    def outputs(self, axis: int, n: int) -> int:
        """Number of windows along an axis of length n (torch's pooling_output_shape)."""
        k, s, p, d = self.kernel[axis], self.stride[axis], self.padding[axis], self.dilation[axis]
        out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if self.ceil_mode else 0)) // s + 1
        if self.ceil_mode and (out - 1) * s >= n + p:
            out -= 1    # the last window would start in the right padding
        return out

    def empty_window(self, axis: int, n: int) -> int | None:
        """A window that holds no input position (all its taps are padding, only possible with
        dilation), or None. Only windows starting left of the input can be empty."""
        k, s, p, d = self.kernel[axis], self.stride[axis], self.padding[axis], self.dilation[axis]
        for o in range(-(-p // s)):
            start = o * s - p
            first_inside = start + -(start // d) * d    # the first tap at a position >= 0
            if first_inside >= n or first_inside > start + (k - 1) * d:
                return o
        return None

    def constants(self) -> dict:
        return {"KERNEL_H": self.kernel[0], "KERNEL_W": self.kernel[1], "STRIDE_H": self.stride[0],
                "STRIDE_W": self.stride[1], "PAD_H": self.padding[0], "PAD_W": self.padding[1],
                "DILATION_H": self.dilation[0], "DILATION_W": self.dilation[1]}

    def most_taps(self, axis: int) -> int:
        return self.kernel[axis]

    def most_covering(self, axis: int) -> int:
        """At most how many windows can hold one input position."""
        return (self.kernel[axis] - 1) * self.dilation[axis] // self.stride[axis] + 1


class _Pool2d(Module):
    """A pooling layer on one (C, H, W) input: subclasses give the output size, the shader
    constants and the loop bounds of their windows."""

    forward_shader: str
    backward_shader: str
    backward_quads_shader: str    # backward where windows do not overlap, on quads of a row
    backward_reads = ()         # windows from the shape alone (MaxPool: the argmax it saved)

    def _output_hw(self, h: int, w: int) -> tuple[int, int]:
        raise NotImplementedError

    def _constants(self) -> dict:
        """Specialization constants beyond the plane geometry."""
        return {}

    def _loop_extents(self, h: int, w: int, oh: int, ow: int, backward: bool) -> tuple[int, int]:
        """Most iterations of the (row, column) loops of one invocation: window taps in forward,
        covering outputs in backward."""
        raise NotImplementedError

    def output_shape(self, *shapes: tuple) -> tuple:
        if len(shapes) != 1:
            raise ValueError(f"{self!r} takes one input, got {len(shapes)}")
        if len(shapes[0]) != 3:
            raise ValueError(f"{self!r} needs a (C, H, W) input, got per-sample shape {tuple(shapes[0])}")
        c, h, w = shapes[0]
        oh, ow = self._output_hw(h, w)
        if oh < 1 or ow < 1:
            raise ValueError(f"{self!r}: a ({c}, {h}, {w}) input gives an empty ({c}, {oh}, {ow}) output")
        return (c, oh, ow)

    def _check_loops(self, io: LayerIO, backward: bool) -> None:
        """ValueError, before any GPU work, if the device would cut an invocation's loops short."""
        c, h, w = io.in_shapes[0]
        _, oh, ow = io.out_shape
        rows, cols = self._loop_extents(h, w, oh, ow, backward)
        io.device.check_loop(_nested_loop_iterations(rows, cols),
                             f"{self!r} {'backward' if backward else 'forward'} on a ({c}, {h}, {w}) input")

    def _dispatch(self, io: LayerIO, shader: str, buffers: dict, items: int, extra_constants=None):
        c, h, w = io.in_shapes[0]
        _, oh, ow = io.out_shape
        program = io.device.program(shader)
        constants = {"PLANES": io.batch * c, "IN_H": h, "IN_W": w, "OUT_H": oh, "OUT_W": ow, **self._constants(),
                     **(extra_constants or {})}
        return io.device.dispatch(program, buffers, io.device.grid_1d(items, program.local_size[0]), constants)

    def _forward_extras(self, io: LayerIO) -> dict:
        """Further buffers forward.comp writes (what backward needs saved)."""
        return {}

    def _backward_extras(self, io: LayerIO) -> dict:
        """Further buffers backward.comp reads."""
        return {}

    def forward(self, io: LayerIO) -> list:
        self._check_loops(io, backward=False)
        buffers = {"x": io.x, "y": io.y, **self._forward_extras(io)}
        return [self._dispatch(io, self.forward_shader, buffers, io.y.size)]

    def backward(self, io: LayerIO) -> list:
        if io.dx is None:
            return []
        if self._backward_on_quads(io):
            buffers = {"dy": io.dy, "dx4": io.dx, **self._backward_extras(io)}
            return [self._dispatch(io, self.backward_quads_shader, buffers, io.dx.size // 4,
                                   self._quads_constants(io.in_shapes[0][2]))]
        self._check_loops(io, backward=True)
        buffers = {"dy": io.dy, "dx": io.dx, **self._backward_extras(io)}
        return [self._dispatch(io, self.backward_shader, buffers, io.dx.size)]

    def _backward_on_quads(self, io: LayerIO) -> bool:
        """Whether backward runs backward_quads_shader: windows that do not overlap (each input
        receives from at most one output per axis: no loops) and input rows of whole quads."""
        _, h, w = io.in_shapes[0]
        _, oh, ow = io.out_shape
        return w % 4 == 0 and self._loop_extents(h, w, oh, ow, backward=True) == (1, 1)

    def _quads_constants(self, width: int) -> dict:
        """Further specialization constants of backward_quads_shader for input rows of `width`."""
        return {}


class _SlidingPool2d(_Pool2d):
    """MaxPool2d and AvgPool2d: arguments as in torch (stride defaults to kernel_size)."""

    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode):
        name = type(self).__name__
        kernel = _pair(name, "kernel_size", kernel_size, 1)
        padding_hw = _pair(name, "padding", padding, 0)
        if any(p > k // 2 for p, k in zip(padding_hw, kernel)):
            raise ValueError(f"{name}: padding must be at most half the kernel size "
                             f"(<= {tuple(k // 2 for k in kernel)}), got {padding!r}")
        stride = kernel_size if stride is None else stride
        self.kernel_size, self.stride, self.padding = _as_given(kernel_size), _as_given(stride), _as_given(padding)
        self.ceil_mode = _flag(name, "ceil_mode", ceil_mode)
        self.windows = SlidingWindows(kernel, _pair(name, "stride", stride, 1), padding_hw,
                                      _pair(name, "dilation", dilation, 1), self.ceil_mode)

    def _output_hw(self, h: int, w: int) -> tuple[int, int]:
        for axis, n in enumerate((h, w)):
            o = self.windows.empty_window(axis, n)
            if o is not None:
                raise ValueError(f"{self!r}: on an input of size {n}, window {o} along "
                                 f"{'HW'[axis]} covers only padding")
        return self.windows.outputs(0, h), self.windows.outputs(1, w)

    def _constants(self) -> dict:
        return self.windows.constants()

    def _loop_extents(self, h, w, oh, ow, backward):
        extent = self.windows.most_covering if backward else self.windows.most_taps
        return extent(0), extent(1)


class MaxPool2d(_SlidingPool2d):
    """y = the maximum over each window (padded positions never win). Forward saves each window's
    argmax (its flat index within the input plane) for backward, which sends dy there. Ties: the
    first maximum in row-major window order; a NaN propagates (as PyTorch on the CPU)."""

    forward_shader, backward_shader = "maxpool2d/forward.comp", "maxpool2d/backward.comp"
    backward_quads_shader = "maxpool2d/backward_quads.comp"

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)
        self.dilation = _as_given(dilation)

    def __repr__(self) -> str:
        return (f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode})")

    def _forward_extras(self, io: LayerIO) -> dict:
        io.saved["argmax"] = io.device.buffer("maxpool2d.argmax", io.y.shape, np.uint32)
        return {"argmax": io.saved["argmax"]}

    def _backward_extras(self, io: LayerIO) -> dict:
        if "argmax" not in io.saved:
            raise ValueError(f"{self!r}: backward needs the argmax saved by forward on the same LayerIO")
        return {"argmax": io.saved["argmax"]}

    def _quads_constants(self, width: int) -> dict:
        """QUAD_WINDOWS: the most windows one quad of input columns iw .. iw + 3 falls in, each
        column's (iw + c + pad) // stride (backward_quads.comp loads each one's argmax once)."""
        stride, pad = self.windows.stride[1], self.windows.padding[1]
        return {"QUAD_WINDOWS": max((iw + 3 + pad) // stride - (iw + pad) // stride + 1 for iw in range(0, width, 4))}


class AvgPool2d(_SlidingPool2d):
    """y = the sum over each window's in-input positions divided by divisor_override if given, else
    by the window's size counting padding (count_include_pad=True) or not. A ceil_mode window
    reaching past the right padding counts only up to it, as in PyTorch."""

    forward_shader, backward_shader = "avgpool2d/forward.comp", "avgpool2d/backward.comp"
    backward_quads_shader = "avgpool2d/backward_quads.comp"

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = _flag("AvgPool2d", "count_include_pad", count_include_pad)
        if divisor_override is not None and not (_is_int(divisor_override) and divisor_override >= 1):
            raise ValueError(f"AvgPool2d: divisor_override must be None or an int >= 1, got {divisor_override!r}")
        self.divisor_override = None if divisor_override is None else int(divisor_override)

    def __repr__(self) -> str:
        return f"AvgPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"

    def _constants(self) -> dict:
        return {**super()._constants(), "COUNT_INCLUDE_PAD": self.count_include_pad,
                "DIVISOR_OVERRIDE": self.divisor_override or 0}


def _most_adaptive_span(n_from: int, n_to: int) -> int:
    """The longest span [floor(i*n_to/n_from), ceil((i+1)*n_to/n_from)) over i < n_from: with
    (n_from, n_to) = (out, in) the longest window, with (in, out) the most outputs holding an input."""
    return max(-(-(i + 1) * n_to // n_from) - i * n_to // n_from for i in range(n_from))


class AdaptiveAvgPool2d(_Pool2d):
    """y = the mean over PyTorch's adaptive windows: output o of m along an axis of length n covers
    inputs [floor(o*n/m), ceil((o+1)*n/m)). output_size: an int or an (H, W) pair, where None keeps
    the input's size. AdaptiveAvgPool2d(1) is global average pooling."""

    forward_shader, backward_shader = "adaptive_avgpool2d/forward.comp", "adaptive_avgpool2d/backward.comp"
    backward_quads_shader = "adaptive_avgpool2d/backward_quads.comp"

    def __init__(self, output_size):
        pair = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
        if output_size is None or len(pair) != 2 or not all(s is None or (_is_int(s) and s >= 1) for s in pair):
            raise ValueError(f"AdaptiveAvgPool2d: output_size must be an int >= 1 or a pair of them "
                             f"(None: the input's size), got {output_size!r}")
        self.output_size = _as_given(output_size)
        self._size = pair

    def __repr__(self) -> str:
        return f"AdaptiveAvgPool2d(output_size={self.output_size})"

    def _output_hw(self, h: int, w: int) -> tuple[int, int]:
        return tuple(n if s is None else int(s) for s, n in zip(self._size, (h, w)))

    def _loop_extents(self, h, w, oh, ow, backward):
        if backward:
            return _most_adaptive_span(h, oh), _most_adaptive_span(w, ow)
        return _most_adaptive_span(oh, h), _most_adaptive_span(ow, w)
