"""Normalization layers with PyTorch semantics: BatchNorm1d, BatchNorm2d and LayerNorm.

BatchNorm normalises each channel (the first per-sample dim) over the batch and the remaining dims.
Channels are few and long, so each reduction runs one workgroup per channel and the per-element work
runs as separate elementwise dispatches (all channels' elements in parallel):

  training forward  statistics (batch mean and biased variance, saved for backward), then
                    running (the running statistics, when tracked) and normalize
  eval forward      normalize with the running statistics
  backward          backward_reduce (sum dy = dbias, sum dy * xhat = dweight), then backward_input (dx)

Saved for backward are the batch mean and biased variance (not invstd): eval mode feeds the running
mean and variance to the same shaders, which compute invstd = 1 / sqrt(variance + eps) themselves.

LayerNorm normalises rows (the trailing normalized_shape dims), which are many and short: one
workgroup per row computes its statistics and writes it (forward) or its dx (backward); the
parameter gradients are column sums. On CPU devices (Device.prefers_invocation_per_row) rows of
whole quads take one invocation each instead, summing quads in order: a workgroup's tree costs a
barrier per level there (LayerNorm 1024x1024 on lavapipe: forward 7.9 -> 1.1 ms, backward 15.7 ->
2.4 with the column sums on quads, which every device takes where rows hold whole quads).

Every workgroup reduction is strided partial sums followed by a fixed tree in shared memory
(shaders/common/reduce.glsl), every per-invocation one a fixed order: the same input gives the same
bits, on any subgroup size.

The batch norm shaders read and write quads of 4 values (vec4 views `<b>4` of their buffers,
common/vec4_index.glsl): on lavapipe each load or store instruction costs about what one value
does. Where a plane (SPATIAL) holds whole quads, a quad is one channel's, its statistics and
parameters loaded once for the four (the ResNet benchmark's batch norms: 79 -> 40-43 ms a step),
and normalize and backward_input take runs of quads within a plane, loading them once a run
(normalize 16.0 -> 7.5 ms, backward_input 11.2 -> 8.4 in that step). All four read their input
quads through common/vec4_input.glsl, as texels where the device prefers them (in that step:
statistics 9.3 -> 6.7 ms; normalize 5.0-5.6 -> 4.3-4.7, backward_input 6.6-7.0 -> 4.9-5.2 in
alternating runs).
"""

from __future__ import annotations

import math

import numpy as np

from .activation import elementwise, quad_views
from .arguments import flag as _flag, is_int as _is_int, number as _number, positive_int as _positive_int
from .base import LayerIO, Module


def workgroup_loop_iterations(items: int, size: int, loops: int, sums: int) -> int:
    """What one invocation spends of lavapipe's loop limit in a workgroup of `size` invocations that
    runs `loops` strided loops over `items` values and `sums` workgroup_sum trees (log2(size)
    halvings). Every loop's exit counts once more. Measured on lavapipe, an upper bound by at most 2:
    the longest reductions it allows run right (tests/test_norm.py)."""
    return loops * (-(-items // size) + 1) + sums * size.bit_length()


def check_workgroup_loops(io: LayerIO, shader: str, items: int, loops: int, sums: int, what: str) -> None:
    """ValueError if the device would cut `shader`'s loops short (see workgroup_loop_iterations).
    Layers check every loop of a pass before they allocate or bind anything."""
    size = io.device.program(shader).local_size[0]
    io.device.check_loop(workgroup_loop_iterations(items, size, loops, sums), f"{what} ({shader})")


# --- argument checks (ValueError naming the layer, the argument, what it must be and what it got) ---


def _eps(layer: str, value):
    return _number(layer, "eps", value, lambda v: v > 0, "a positive number")


# --- BatchNorm ------------------------------------------------------------------------------


def _affine_parameters(shape, weight: bool, bias: bool) -> dict[str, np.ndarray]:
    """A norm's initial affine parameters, as torch: weight ones, bias zeros (each if enabled)."""
    params = {"weight": np.ones(shape, np.float32)} if weight else {}
    if bias:
        params["bias"] = np.zeros(shape, np.float32)
    return params


class _BatchNorm(Module):
    """Batch norm over channel-first per-sample shapes (C, *rest): per channel, statistics over the
    batch and `rest`. Subclasses give the per-sample ranks they take."""

    differs_in_eval = True
    keeps_shape = True
    backward_reads = ("x",)     # x-hat is recomputed from x and the saved statistics
    # A following ReLU can be applied as normalize's epilogue (one dispatch and barrier less), in
    # training and eval mode alike.
    epilogues = ("relu",)
    ranks: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, bias: bool = True):
        name = type(self).__name__
        self.num_features = _positive_int(name, "num_features", num_features)
        self.eps = _eps(name, eps)
        self.momentum = None if momentum is None else \
            _number(name, "momentum", momentum, lambda v: 0 <= v <= 1, "None or a number in [0, 1]")
        self.affine = _flag(name, "affine", affine)
        self.bias = self.affine and _flag(name, "bias", bias)   # as torch: no bias without affine
        self.track_running_stats = _flag(name, "track_running_stats", track_running_stats)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias}, track_running_stats={self.track_running_stats})")

    def parameters(self) -> dict[str, np.ndarray]:
        return _affine_parameters(self.num_features, self.affine, self.bias)

    def buffers(self) -> dict[str, np.ndarray]:
        if not self.track_running_stats:
            return {}
        return {"running_mean": np.zeros(self.num_features, np.float32),
                "running_var": np.ones(self.num_features, np.float32),
                "num_batches_tracked": np.array(0, np.int64)}

    def expected_shapes(self) -> str:
        """The per-sample shapes the layer takes, in words."""
        raise NotImplementedError

    def output_shape(self, *shapes: tuple) -> tuple:
        if len(shapes) != 1:
            raise ValueError(f"{self!r} takes one input, got {len(shapes)}")
        shape = tuple(shapes[0])
        if len(shape) not in self.ranks or shape[0] != self.num_features:
            raise ValueError(f"{self!r} needs a per-sample shape {self.expected_shapes()}, got {shape}")
        return shape

    # --- planning ---------------------------------------------------------------------------

    def _uses_batch_stats(self, io: LayerIO) -> bool:
        # As torch: without running statistics, eval mode normalises with the batch's too.
        return io.training or not self.track_running_stats

    @staticmethod
    def _geometry(io: LayerIO) -> dict:
        """Channels, the values per channel and sample (SPATIAL), and per channel (VALUES)."""
        shape = io.in_shapes[0]
        spatial = math.prod(shape[1:])
        return {"CHANNELS": shape[0], "SPATIAL": spatial, "VALUES": io.batch * spatial}

    def _statistics(self, io: LayerIO) -> tuple:
        """The (mean, variance) buffers forward normalised with: the batch's, saved by a training
        forward, or the running statistics."""
        if not self._uses_batch_stats(io):
            return io.state["running_mean"], io.state["running_var"]
        if "mean" not in io.saved:
            raise ValueError(f"{self!r}: backward needs the batch statistics saved by forward on the same LayerIO")
        return io.saved["mean"], io.saved["variance"]

    @staticmethod
    def _run(device, geometry: dict) -> int:
        """Quads of one channel the elementwise shaders take in a row where planes hold whole
        quads (RUN): as many as an invocation takes (Device.quads_per_invocation) that divide a
        plane's quads, so a run never crosses channels and its per-channel values load once."""
        spatial = geometry["SPATIAL"]
        return math.gcd(spatial // 4, device.quads_per_invocation) if spatial % 4 == 0 else 1

    def _per_channel(self, io: LayerIO, shader: str, buffers: dict, constants: dict):
        """A dispatch of one workgroup per channel (its loops checked by the caller)."""
        geometry = self._geometry(io)
        # The quads of x (and dy) as texels where the device prefers them (common/vec4_input.glsl).
        quads = {f"{name}4": buffers[name] for name in ("x", "dy") if name in buffers}
        program = io.device.program(shader, io.device.read_defines(quads.values()))
        return io.device.dispatch(program, {**buffers, **quads},
                                  io.device.grid_1d(geometry["CHANNELS"], 1), {**geometry, **constants})

    def _check_channel_loops(self, io: LayerIO, shader: str, loops: int, sums: int) -> None:
        values = self._geometry(io)["VALUES"]
        check_workgroup_loops(io, shader, values, loops, sums, f"{self!r} over {values} values per channel")

    def forward(self, io: LayerIO) -> list:
        geometry = self._geometry(io)
        work = self._batch_statistics(io, geometry) if self._uses_batch_stats(io) else []
        mean, variance = self._statistics(io)
        placeholder = io.device.placeholder
        buffers = {"x": io.x, "mean": mean, "variance": variance, "y": io.y,
                   "weight": io.params["weight"] if self.affine else placeholder,
                   "bias": io.params["bias"] if self.bias else placeholder}
        return work + [elementwise(io.device, "batchnorm/normalize.comp", buffers, io.x.size,
                                   {"CHANNELS": geometry["CHANNELS"], "SPATIAL": geometry["SPATIAL"],
                                    "RUN": self._run(io.device, geometry),
                                    "EPS": self.eps, "AFFINE": self.affine, "HAS_BIAS": self.bias,
                                    "RELU": io.epilogue == "relu"}, texel_quads={"x4": io.x})]

    def _batch_statistics(self, io: LayerIO, geometry: dict) -> list:
        """The batch's mean and variance into io.saved, and in training mode the running statistics'
        update: checked, then allocated and dispatched."""
        channels = geometry["CHANNELS"]
        if geometry["VALUES"] == 1:
            raise ValueError(f"{self!r}: Expected more than 1 value per channel when training, "
                             f"got input size {(io.batch, *io.in_shapes[0])}")
        update_running = io.training and self.track_running_stats
        self._check_channel_loops(io, "batchnorm/statistics.comp", loops=2, sums=2)
        if update_running:
            check_workgroup_loops(io, "batchnorm/running.comp", channels, loops=1, sums=0,
                                  what=f"{self!r} over {channels} channels")
        io.saved["mean"] = io.device.buffer("batchnorm.mean", (channels,))
        io.saved["variance"] = io.device.buffer("batchnorm.variance", (channels,))
        work = [self._per_channel(io, "batchnorm/statistics.comp",
                                  {"x": io.x, "mean": io.saved["mean"], "variance": io.saved["variance"]}, {})]
        if update_running:
            work.append(self._update_running(io, geometry))
        return work

    def _update_running(self, io: LayerIO, geometry: dict):
        buffers = {"mean": io.saved["mean"], "variance": io.saved["variance"], **io.state}
        cumulative = self.momentum is None
        return io.device.dispatch("batchnorm/running.comp", buffers, (1, 1, 1),
                                  {"CHANNELS": geometry["CHANNELS"], "VALUES": geometry["VALUES"],
                                   "MOMENTUM": 0.0 if cumulative else self.momentum, "CUMULATIVE": cumulative})

    def backward(self, io: LayerIO) -> list:
        batch_stats = self._uses_batch_stats(io)
        mean, variance = self._statistics(io)
        geometry = self._geometry(io)
        work = []
        # The per-channel sums are dbias and dweight; training-mode dx needs them even without parameters.
        sum_dy = sum_dy_xhat = io.device.placeholder
        if self.affine or (batch_stats and io.dx is not None):
            self._check_channel_loops(io, "batchnorm/backward_reduce.comp", loops=1, sums=2)
            channels = geometry["CHANNELS"]
            sum_dy = io.grads["bias"] if self.bias else io.device.buffer("batchnorm.sum_dy", (channels,))
            sum_dy_xhat = io.grads["weight"] if self.affine else io.device.buffer("batchnorm.sum_dy_xhat", (channels,))
            work.append(self._per_channel(io, "batchnorm/backward_reduce.comp",
                                          {"x": io.x, "dy": io.dy, "mean": mean, "variance": variance,
                                           "sum_dy": sum_dy, "sum_dy_xhat": sum_dy_xhat}, {"EPS": self.eps}))
        if io.dx is not None:
            buffers = {"x": io.x, "dy": io.dy, "mean": mean, "variance": variance, "dx": io.dx,
                       "weight": io.params["weight"] if self.affine else io.device.placeholder,
                       "sum_dy": sum_dy, "sum_dy_xhat": sum_dy_xhat}
            work.append(elementwise(io.device, "batchnorm/backward_input.comp", buffers, io.x.size,
                                    {**geometry, "EPS": self.eps, "AFFINE": self.affine, "BATCH_STATS": batch_stats,
                                     "RUN": self._run(io.device, geometry)},
                                    texel_quads={"x4": buffers["x"], "dy4": io.dy}))
        return work


class BatchNorm1d(_BatchNorm):
    """torch.nn.BatchNorm1d on per-sample shapes (C,) or (C, L)."""
    ranks = (1, 2)

    def expected_shapes(self) -> str:
        return f"({self.num_features},) or ({self.num_features}, L)"


class BatchNorm2d(_BatchNorm):
    """torch.nn.BatchNorm2d on per-sample shapes (C, H, W)."""
    ranks = (3,)

    def expected_shapes(self) -> str:
        return f"({self.num_features}, H, W)"


# --- LayerNorm ------------------------------------------------------------------------------

# LayerNorm's row passes: (the shader with a workgroup per row, the one with an invocation per row
# on quads, the loops over a row each runs).
_ROW_PASSES = {"forward": ("layernorm/forward.comp", "layernorm/forward_rows.comp", 3),
               "backward_input": ("layernorm/backward_input.comp", "layernorm/backward_input_rows.comp", 2)}


class LayerNorm(Module):
    """torch.nn.LayerNorm: each sample's trailing `normalized_shape` dims normalised by their own
    mean and biased variance, then scaled by weight and shifted by bias (both of normalized_shape).
    The same in training and eval mode."""

    keeps_shape = True
    backward_reads = ("x",)

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True):
        dims = (normalized_shape,) if _is_int(normalized_shape) else \
            tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) else ()
        if not dims or not all(_is_int(d) and d >= 1 for d in dims):
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a non-empty tuple of them, "
                             f"got {normalized_shape!r}")
        self.normalized_shape = tuple(int(d) for d in dims)
        self.eps = _eps("LayerNorm", eps)
        self.elementwise_affine = _flag("LayerNorm", "elementwise_affine", elementwise_affine)
        self.bias = self.elementwise_affine and _flag("LayerNorm", "bias", bias)   # as torch

    def __repr__(self) -> str:
        return (f"LayerNorm({self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias})")

    def parameters(self) -> dict[str, np.ndarray]:
        return _affine_parameters(self.normalized_shape, self.elementwise_affine, self.bias)

    def output_shape(self, *shapes: tuple) -> tuple:
        if len(shapes) != 1:
            raise ValueError(f"{self!r} takes one input, got {len(shapes)}")
        shape, k = tuple(shapes[0]), len(self.normalized_shape)
        if shape[len(shape) - k:] != self.normalized_shape:
            raise ValueError(f"{self!r} needs a per-sample shape ending in {self.normalized_shape}, got {shape}")
        return shape

    def _rows_cols(self, io: LayerIO) -> tuple[int, int]:
        cols = math.prod(self.normalized_shape)
        return io.x.size // cols, cols

    def _invocation_per_row(self, io: LayerIO, loops: int) -> bool:
        """Whether a row pass of `loops` loops over a row runs one invocation per row on quads
        (the second shader of its _ROW_PASSES entry) rather than a workgroup per row with trees: on
        devices that prefer it (Device.prefers_invocation_per_row), for rows of whole quads whose
        loops the device runs to the end."""
        cols, limit = self._rows_cols(io)[1], io.device.loop_limit
        return (io.device.prefers_invocation_per_row and cols % 4 == 0
                and (limit is None or loops * (cols // 4 + 1) <= limit))

    def _check_row_pass(self, io: LayerIO, name: str) -> None:
        """ValueError, before anything is allocated, if the device would cut a row pass's loops
        short (the per-row form is only picked where they fit)."""
        workgroup_shader, _, loops = _ROW_PASSES[name]
        if not self._invocation_per_row(io, loops):
            cols = self._rows_cols(io)[1]
            check_workgroup_loops(io, workgroup_shader, cols, loops, sums=2,
                                  what=f"{self!r} over rows of {cols} values")

    def _row_pass(self, io: LayerIO, name: str, buffers: dict, constants: dict):
        """The dispatch of a row pass (forward or backward_input) in the form `_invocation_per_row` picks."""
        rows, cols = self._rows_cols(io)
        workgroup_shader, row_shader, loops = _ROW_PASSES[name]
        if not self._invocation_per_row(io, loops):
            return io.device.dispatch(workgroup_shader, buffers, io.device.grid_1d(rows, 1),
                                      {"ROWS": rows, "COLS": cols, **constants})
        # Every binding but the row statistics as a vec4 view; the inputs read as texels where preferred.
        quads = {(b if b in ("mean", "invstd") else f"{b}4"): buffer for b, buffer in buffers.items()}
        inputs = [buffer for b, buffer in buffers.items() if b in ("x", "dy", "weight", "bias")]
        program = io.device.program(row_shader, io.device.read_defines(inputs))
        return io.device.dispatch(program, quads, io.device.grid_1d(rows, program.local_size[0]),
                                  {"ROWS": rows, "COLS": cols, **constants})

    def forward(self, io: LayerIO) -> list:
        self._check_row_pass(io, "forward")
        rows, _ = self._rows_cols(io)
        io.saved["mean"] = io.device.buffer("layernorm.mean", (rows,))
        io.saved["invstd"] = io.device.buffer("layernorm.invstd", (rows,))
        placeholder = io.device.placeholder
        buffers = {"x": io.x, "y": io.y, "mean": io.saved["mean"], "invstd": io.saved["invstd"],
                   "weight": io.params["weight"] if self.elementwise_affine else placeholder,
                   "bias": io.params["bias"] if self.bias else placeholder}
        return [self._row_pass(io, "forward", buffers,
                               {"EPS": self.eps, "AFFINE": self.elementwise_affine, "HAS_BIAS": self.bias})]

    def backward(self, io: LayerIO) -> list:
        if "mean" not in io.saved:
            raise ValueError(f"{self!r}: backward needs the row statistics saved by forward on the same LayerIO")
        rows, cols = self._rows_cols(io)
        if io.dx is not None:
            self._check_row_pass(io, "backward_input")
        if io.grads:
            io.device.check_loop(rows + 1, f"{self!r} over {rows} rows (layernorm/backward_param.comp)")
        saved = {"x": io.x, "dy": io.dy, "mean": io.saved["mean"], "invstd": io.saved["invstd"]}
        work = []
        if io.dx is not None:
            weight = io.params["weight"] if self.elementwise_affine else io.device.placeholder
            work.append(self._row_pass(io, "backward_input", {**saved, "weight": weight, "dx": io.dx},
                                       {"AFFINE": self.elementwise_affine}))
        # dweight and dbias: column sums over the rows, one dispatch each (independent of dx), on
        # quads of 4 columns where rows hold whole quads (the same sums, the same bits).
        if cols % 4 == 0:
            program = io.device.program("layernorm/backward_param_quads.comp", io.device.read_defines([io.x, io.dy]))
            reads = {"x4": io.x, "dy4": io.dy, "mean": io.saved["mean"], "invstd": io.saved["invstd"]}
            grad, columns = "dparam4", cols // 4
        else:
            program, reads, grad, columns = io.device.program("layernorm/backward_param.comp"), saved, "dparam", cols
        work += [io.device.dispatch(program, {**reads, grad: io.grads[name]},
                                    io.device.grid_1d(columns, program.local_size[0]),
                                    {"ROWS": rows, "COLS": cols, "TIMES_XHAT": name == "weight"})
                 for name in io.grads]
        return work
