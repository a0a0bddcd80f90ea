"""Conv2d with PyTorch semantics (NCHW, zero padding, groups).

Forward, the input gradient and the weight gradient are implicit GEMMs on the shared core
(shaders/common/gemm.glsl): the unfolded input (im2col) is gathered from x as the core asks for it,
never stored. Each group is one layer of workgroups (gl_WorkGroupID.z):

    forward          rows: the group's out channels  columns: (b, oh, ow)  reduction: (c, kh, kw)
    backward_input   rows: the group's in channels   columns: (b, ih, iw)  reduction: (o, kh, kw)
    backward_weight  rows: the group's out channels  columns: (c, kh, kw)  reduction: (b, oh, ow)

The weight and bias gradients reduce over the batch and every output position, which is long (65,536
terms for batch 64 at 32x32): it is split into slices summed by separate workgroups into a scratch
buffer, then added slice by slice in a fixed order (split-K; deterministic).

On CPU devices (where the vec4 + subgroup-shuffle core is chosen, gemm_shuffle.chosen) each GEMM
whose shape allows runs on that core instead (the *_shuffle.comp shaders): a lane's four columns are
neighbours in one image row, read as quads (shaders/conv2d/quads.glsl), so the rows must be a
multiple of 4 wide (output rows for forward and the weight gradient, input rows for the input
gradient) and the gradients' reductions must split into quads (forward runs its reduction to the
next quad, the extra terms zero: a first layer's 3 channels x 9 taps). A strided input gradient goes
one phase of dx at a time over the taps that reach it (backward_input_phases.comp) instead of
multiplying zeros for the others. On lavapipe that made the ResNet benchmark's convolutions 3-4x
faster."""

from __future__ import annotations

import math

import numpy as np

from .. import random
from .activation import elementwise
from .arguments import is_int as _is_int, pair as _pair
from .base import LayerIO, Module
from . import gemm, gemm_shuffle
from .gemm import gemm_dispatch, loop_iterations

_FORWARD = "conv2d/forward.comp"
_FORWARD_SHUFFLE = "conv2d/forward_shuffle.comp"
_BACKWARD_INPUT = "conv2d/backward_input.comp"
_BACKWARD_INPUT_SHUFFLE = "conv2d/backward_input_shuffle.comp"
_BACKWARD_INPUT_PHASES = "conv2d/backward_input_phases.comp"
_BACKWARD_WEIGHT = "conv2d/backward_weight.comp"
_BACKWARD_WEIGHT_SHUFFLE = "conv2d/backward_weight_shuffle.comp"
_BACKWARD_BIAS = "conv2d/backward_bias.comp"
_SUM_SLICES = "conv2d/sum_slices.comp"

# The GEMM core's register block for convolutions on CPU devices (lavapipe), where the gathered
# loads cost most: 16 x 16 outputs per invocation do 16 multiply-adds per load, and measured ~2.5x
# faster than the default 8 x 4 on CIFAR-shaped layers. GPUs keep gemm.TILE until they are measured.
CPU_TILE = gemm.CPU_TILE
# Most reduction terms one GEMM invocation sums before writing a partial sum: keeps the serial loop
# far below lavapipe's limit and spreads a long reduction over many workgroups (e.g. 16 slices x 4
# workgroups for a 32-channel 3x3 layer at batch 64, 32x32, instead of 4 workgroups).
GEMM_SLICE_TERMS = 4096
# The same for the bias gradient, whose workgroup of 256 invocations sums a slice: 64 terms each.
BIAS_SLICE_TERMS = 256 * 64


def _tile(device) -> dict:
    return CPU_TILE if device.properties["device_type"] == "Cpu" else gemm.TILE


def _shuffle_tile(rows: int, columns: int) -> dict:
    """The shuffle core's default tile for a convolution GEMM of rows x columns: its TILE for 32 rows
    or more, else a 16-row tile, narrow where a wide one would leave most of its last workgroup's
    columns idle (all of 32 vec4 accumulators or fewer: quick to compile on lavapipe)."""
    if rows >= gemm_shuffle.TILE["TM"]:
        return gemm_shuffle.TILE
    wide = gemm_shuffle.HALF_ROWS_TILE
    return wide if columns >= 4 * gemm_shuffle.columns(wide) else gemm_shuffle.NARROW_TILE


def _whole_quads(*buffers) -> bool:
    """Whether the shuffle shaders can read these buffers as vec4 quads (common/vec4_input.glsl):
    sizes that are multiples of 4, so no value lies in a partial last quad."""
    return all(b.size % 4 == 0 for b in buffers)


def _slices(device, length: int, preferred: int, terms_per_iteration: int = 1,
            fixed_iterations: int = 0) -> tuple[int, int]:
    """(slices, terms per slice) splitting a reduction of `length` terms into near-equal slices of at
    most `preferred` terms, smaller where the device's loop limit needs it: an invocation summing a
    slice loops once per `terms_per_iteration` terms, plus `fixed_iterations`."""
    most = preferred
    if device.loop_limit is not None:
        most = min(most, (device.loop_limit - fixed_iterations) * terms_per_iteration)
    slices = -(-length // most)
    return slices, -(-length // slices)


class Conv2d(Module):
    backward_reads = ("x",)     # implicit GEMMs over x and dy: never its output
    # The backward of a ReLU right before it (a ResNet block's second convolution): x, its output,
    # masks the dx the input gradient stores; and a block input's gradient, which the skip's
    # backward wrote first, gets the first convolution's part added in that store
    # (common/dx_epilogue.glsl).
    dx_epilogues = ("relu",)
    accumulates_dx = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", name: str | None = None):
        for what, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not _is_int(value) or value < 1:
                raise ValueError(f"Conv2d: {what} must be a positive int, got {value!r}")
        for what, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value % groups:
                raise ValueError(f"Conv2d: {what} must be divisible by groups ({groups}), got {value}")
        if padding_mode != "zeros":
            raise ValueError(f"Conv2d: padding_mode must be 'zeros' (the only one supported), got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = _pair("Conv2d", "stride", stride, 1)
        self.dilation = _pair("Conv2d", "dilation", dilation, 1)
        self.padding = self._padding(padding)
        self.bias = bool(bias)
        self.name = name
        # torch's default (kaiming_uniform with a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both.
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        bound = 1.0 / math.sqrt(math.prod(shape[1:]))
        rng = random.generator()
        self._init = {"weight": rng.uniform(-bound, bound, shape).astype(np.float32)}
        if self.bias:
            self._init["bias"] = rng.uniform(-bound, bound, self.out_channels).astype(np.float32)

    def _padding(self, padding):
        """torch's `padding` attribute: 'valid', 'same' or an (H, W) pair."""
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"Conv2d: padding must be 'valid', 'same', an int >= 0 or a pair of them, "
                                 f"got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' needs stride 1 (as in PyTorch), got stride {self.stride}")
            return padding
        return _pair("Conv2d", "padding", padding, 0)

    def _pad(self, axis: int) -> tuple[int, int]:
        """(top/left padding, total padding) along an axis. 'same' pads d*(k-1) in all, the odd one
        at the bottom/right as torch does."""
        if self.padding == "valid":
            return 0, 0
        if self.padding == "same":
            total = self.dilation[axis] * (self.kernel_size[axis] - 1)
            return total // 2, total
        return self.padding[axis], 2 * self.padding[axis]

    def __repr__(self) -> str:
        text = (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + (")" if self.bias else ", bias=False)")

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._init.items()}

    def output_shape(self, *shapes: tuple) -> tuple:
        if len(shapes) != 1:
            raise ValueError(f"{self!r} takes one input, got {len(shapes)}")
        shape = tuple(shapes[0])
        if len(shape) != 3:
            raise ValueError(f"{self!r} needs a (C, H, W) input, got per-sample shape {shape}: give the model "
                             "its input shape (Sequential(..., input_shape=(C, H, W))) or reshape with vb.Reshape")
        c, h, w = shape
        if c != self.in_channels:
            raise ValueError(f"{self!r} takes {self.in_channels} input channels, got a ({c}, {h}, {w}) input")
        out = tuple((n + self._pad(axis)[1] - self.dilation[axis] * (self.kernel_size[axis] - 1) - 1)
                    // self.stride[axis] + 1 for axis, n in enumerate((h, w)))
        if min(out) < 1:
            raise ValueError(f"{self!r}: a ({c}, {h}, {w}) input is smaller than the (dilated) kernel "
                             f"{tuple(self.dilation[a] * (self.kernel_size[a] - 1) + 1 for a in (0, 1))} "
                             f"with its padding; the output would be {(self.out_channels,) + out}")
        return (self.out_channels,) + out

    def _geometry(self, io: LayerIO) -> dict:
        """The specialization constants of shaders/conv2d/geometry.glsl."""
        (c, h, w), (o, oh, ow) = io.in_shapes[0], io.out_shape
        return {"BATCH": io.batch, "IN_C": c, "IN_H": h, "IN_W": w, "OUT_C": o, "OUT_H": oh, "OUT_W": ow,
                "GROUPS": self.groups, "KERNEL_H": self.kernel_size[0], "KERNEL_W": self.kernel_size[1],
                "STRIDE_H": self.stride[0], "STRIDE_W": self.stride[1], "PAD_H": self._pad(0)[0],
                "PAD_W": self._pad(1)[0], "DILATION_H": self.dilation[0], "DILATION_W": self.dilation[1]}

    def forward(self, io: LayerIO) -> list:
        geometry = self._geometry(io)
        bias = io.params["bias"] if self.bias else io.device.placeholder
        buffers = {"x": io.x, "weight": io.params["weight"], "bias": bias, "y": io.y}
        rows, columns = self.out_channels // self.groups, io.batch * geometry["OUT_H"] * geometry["OUT_W"]
        terms, constants = self.in_channels // self.groups * math.prod(self.kernel_size), dict(geometry, HAS_BIAS=self.bias)
        # The shuffle core's lanes take four neighbouring columns of one output row; the shader
        # reads weight rows of any length (its reduction runs to the next quad).
        if (geometry["OUT_W"] % 4 == 0 and _whole_quads(io.x, io.params["weight"])
                and gemm_shuffle.chosen(io.device)):
            return [gemm_shuffle.shuffle_dispatch(io.device, _FORWARD_SHUFFLE, buffers, rows, columns, terms, constants,
                                                  z=self.groups, tile=_shuffle_tile(rows, columns))]
        return [gemm_dispatch(io.device, _FORWARD, buffers, rows, columns, terms, constants, z=self.groups,
                              tile=_tile(io.device))]

    def backward(self, io: LayerIO) -> list:
        # The gradients only read dy, x and the weight: independent dispatches, no barriers between them
        # (but between a split reduction's slices and their sum).
        geometry = self._geometry(io)
        work = self._weight_gradient(io, geometry)
        if self.bias:
            work += self._bias_gradient(io, geometry)
        if io.dx is not None:
            work.append(self._input_gradient(io, geometry))
        return work

    def _input_gradient(self, io: LayerIO, geometry: dict):
        buffers = {"dy": io.dy, "weight": io.params["weight"], "dx": io.dx, "x": io.x,
                   "partials": io.dx_partials or io.device.placeholder}
        constants = dict(geometry, RELU_BACKWARD=io.dx_epilogue == "relu", ACCUMULATE=io.dx_partials is not None)
        phases = self._input_gradient_by_phases(io, constants, buffers)
        if phases is not None:
            return phases
        rows, columns = self.in_channels // self.groups, io.batch * geometry["IN_H"] * geometry["IN_W"]
        terms = self.out_channels // self.groups * math.prod(self.kernel_size)
        # The shuffle core's lanes take four neighbouring columns of one input row.
        if (geometry["IN_W"] % 4 == 0 and _whole_quads(io.dy, io.params["weight"])
                and gemm_shuffle.applies(io.device, rows, columns, terms, b_n_contiguous=True)):
            return gemm_shuffle.shuffle_dispatch(io.device, _BACKWARD_INPUT_SHUFFLE, buffers, rows, columns, terms,
                                                 constants, z=self.groups, tile=_shuffle_tile(rows, columns))
        return gemm_dispatch(io.device, _BACKWARD_INPUT, buffers, rows, columns, terms, constants, z=self.groups,
                             tile=_tile(io.device))

    def _input_gradient_by_phases(self, io: LayerIO, constants: dict, buffers: dict):
        """A strided convolution's input gradient one phase of dx at a time (ih % stride_h, iw %
        stride_w), each over the taps that reach it (backward_input_phases.comp), or None where
        that does not apply: it needs dilation 1, rows and columns in whole strides, rows of a
        phase a multiple of 4 wide, output channels per group in quads. `constants`: the geometry
        and the epilogue's."""
        (in_h, in_w), (stride_h, stride_w) = (constants["IN_H"], constants["IN_W"]), self.stride
        group_out = self.out_channels // self.groups
        if (self.stride == (1, 1) or self.dilation != (1, 1) or in_h % stride_h or in_w % stride_w
                or (in_w // stride_w) % 4 or group_out % 4 or not _whole_quads(io.dy, io.params["weight"])):
            return None
        rows, columns = self.in_channels // self.groups, io.batch * (in_h // stride_h) * (in_w // stride_w)
        # The longest reduction: the phases whose first tap is tap 0 on both axes.
        terms = group_out * math.prod(-(-k // s) for k, s in zip(self.kernel_size, self.stride))
        if not gemm_shuffle.applies(io.device, rows, columns, terms, b_n_contiguous=True):
            return None
        return gemm_shuffle.shuffle_dispatch(io.device, _BACKWARD_INPUT_PHASES, buffers, rows, columns, terms,
                                             constants, z=self.groups * stride_h * stride_w,
                                             tile=_shuffle_tile(rows, columns))

    def _weight_gradient(self, io: LayerIO, geometry: dict) -> list:
        terms = io.batch * geometry["OUT_H"] * geometry["OUT_W"]
        dweight = io.grads["weight"]
        rows, columns = self.out_channels // self.groups, dweight.size // self.out_channels
        # The shuffle core sums quads of terms: four neighbouring positions of one output row.
        if (geometry["OUT_W"] % 4 == 0 and _whole_quads(io.x)
                and gemm_shuffle.applies(io.device, rows, columns, terms, b_n_contiguous=False)):
            tile = _shuffle_tile(rows, columns)
            slices, slice_quads = _slices(io.device, terms // 4, GEMM_SLICE_TERMS // 4,
                                          fixed_iterations=gemm_shuffle.fixed_loop_iterations(tile))
            target = self._slice_buffer(io, dweight, slices)
            work = [gemm_shuffle.shuffle_dispatch(io.device, _BACKWARD_WEIGHT_SHUFFLE,
                                                  {"dy": io.dy, "x": io.x, "dweight": target}, rows, columns,
                                                  4 * slice_quads, dict(geometry, SLICES=slices),
                                                  z=self.groups * slices, tile=tile)]
        else:
            slices, slice_terms = _slices(io.device, terms, GEMM_SLICE_TERMS,
                                          fixed_iterations=loop_iterations(0, _tile(io.device)))
            target = self._slice_buffer(io, dweight, slices)
            work = [gemm_dispatch(io.device, _BACKWARD_WEIGHT, {"dy": io.dy, "x": io.x, "dweight": target},
                                  rows, columns, slice_terms, dict(geometry, SLICES=slices), z=self.groups * slices,
                                  tile=_tile(io.device))]
        return work + self._sum_slices(io, target, dweight, slices)

    def _bias_gradient(self, io: LayerIO, geometry: dict) -> list:
        terms = io.batch * geometry["OUT_H"] * geometry["OUT_W"]
        program = io.device.program(_BACKWARD_BIAS)
        width = program.local_size[0]
        tree = int(math.log2(width)) + 1     # the workgroup sum's loop, with its exit
        slices, slice_terms = _slices(io.device, terms, BIAS_SLICE_TERMS, width, tree + 1)
        io.device.check_loop(-(-slice_terms // width) + 1 + tree, f"{_BACKWARD_BIAS} ({slice_terms} terms per slice)")
        dbias = io.grads["bias"]
        target = self._slice_buffer(io, dbias, slices)
        work = [io.device.dispatch(program, {"dy": io.dy, "dbias": target}, (self.out_channels, slices),
                                   dict(geometry, SLICE_TERMS=slice_terms))]
        return work + self._sum_slices(io, target, dbias, slices)

    @staticmethod
    def _slice_buffer(io: LayerIO, gradient, slices: int):
        """Where a split reduction writes: the gradient itself if it is one slice, else scratch."""
        if slices == 1:
            return gradient
        return io.device.buffer(f"{gradient.name}.slices", (slices,) + tuple(gradient.shape))

    @staticmethod
    def _sum_slices(io: LayerIO, slices_buffer, gradient, slices: int) -> list:
        if slices == 1:
            return []
        io.device.check_loop(slices + 1, f"{_SUM_SLICES} ({slices} slices)")
        return [elementwise(io.device, _SUM_SLICES, {"slices": slices_buffer, "total": gradient}, gradient.size,
                            {"SLICES": slices})]
