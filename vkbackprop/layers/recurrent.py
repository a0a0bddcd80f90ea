"""Recurrent layers with backpropagation through time on the GPU: RNN, LSTM and GRU (PyTorch names,
gate orders, shapes, initialisation and semantics), and Narrow, which picks the final states out of
their output.

Layout. Values are stored batch-major, (batch, width) rows, so a sequence input has the per-sample
shape (T, input_size): sample b's row is its T steps one after another. That is what torch calls
batch_first=True. `batch_first` is accepted for code written for torch, but changes nothing: a
time-major (T, N, F) array is not how vkbackprop stores values, so model inputs are (batch, T *
input_size) whatever its setting (transpose a torch-style time-major array to batch-major first).

Calls. `layer(x)`, `layer(x, h0)` (LSTM: `layer(x, (h0, c0))`), and `lengths=` (a value of
per-sample shape (1,) holding each sequence's length: pack_padded_sequence semantics, outputs past
a sequence's length are 0 and the final state is the state after its last valid step). A Trainer
refuses a length that is not an integer in [1, T] before any GPU work (check_input_values); on the
GPU such a length makes that sample's outputs NaN (so the step raises rather than train on it). Initial states have per-sample shape (num_layers, hidden_size). A layer object
always takes the same kind of inputs (its first call fixes which), since its dispatches depend on it.

Outputs. A call returns ONE value (graph calls have one output): the output sequence (T, hidden),
or with return_state=True the output sequence followed by the final states, (T + num_layers, H)
(RNN, GRU) or (T + 2 * num_layers, H) (LSTM: h_n then c_n). `layer.split(value)` returns
torch's (output, h_n) or (output, (h_n, c_n)) as values, through Narrow (a copy: a slice of every
row is not contiguous, so it cannot be a view).

Per layer of the stack, forward records: one GEMM for the input part of every gate at every time
step (x W_ih^T + b_ih), the initial state, then one dispatch per time step (the recurrent part and
the cell update, one invocation per hidden unit of a block of samples: 4 on CPU devices where the
hidden size is a multiple of 4, which load each weight quad once for the block, else 1). It saves
the states h_0..h_T (LSTM: c_0..c_T) and the gate activations. Backward records one dispatch per
time step, in reverse (it leaves dL/d(gate pre-activations) for every step), then GEMMs for the
weight gradients (summed over time and batch) and the input gradient. Every time step's dispatch is
the same recorded dispatch: the step index comes from a one-float clock on the device (see
shaders/rnn/sequence.glsl), so there is no host round trip and no per-step pipeline. Where the
hidden size is a multiple of 4 the step shaders read W_hh, h and the gate gradients as vec4 quads,
backward from a copy of W_hh^T made once per pass (its rows are what a hidden unit's gradient sums
over): on lavapipe each load instruction costs about what one value does (the LSTM benchmark's
steps: 77 -> 31-37 ms a step). Forward loads each quad of h once for all of a unit's gates, and both
read the weight quads (and forward h's, backward the gate gradients') as texels where the device
prefers them (common/vec4_input.glsl): the same sums, the same bits."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import random
from ..optim.base import fill
from .activation import quad_views
from .arguments import is_int
from .base import LayerIO, Module
from . import gemm, gemm_shuffle
from .gemm import gemm_dispatch

_PROJECTION = "rnn/input_projection.comp"
_PROJECTION_SHUFFLE = "rnn/input_projection_shuffle.comp"
_BACKWARD_INPUT = "rnn/backward_input.comp"
_BACKWARD_INPUT_SHUFFLE = "rnn/backward_input_shuffle.comp"
_BACKWARD_WEIGHT = "rnn/backward_weight.comp"
_BACKWARD_WEIGHT_SHUFFLE = "rnn/backward_weight_shuffle.comp"
_BACKWARD_BIAS = "rnn/backward_bias.comp"
_COPY = "rnn/copy_block.comp"
_TRANSPOSE = "rnn/transpose_weight.comp"


@dataclasses.dataclass(frozen=True)
class Cell:
    """What differs between RNN, LSTM and GRU on the Python side."""
    mode: str               # the reference's name (vkbackprop.reference.recurrent)
    gates: int              # gate rows of W_ih / W_hh per hidden unit
    saved_gates: int        # dL/d(gate) columns per hidden unit that backward keeps per step
    forward_shader: str
    backward_shader: str
    has_cell_state: bool    # LSTM's c
    saves_gates: bool       # forward keeps the gate activations

    def hidden_skip(self, hidden: int) -> dict:
        """Which dgates column multiplies W_hh's row g: g, except GRU's n rows, which pair with the
        saved dL/d(W_hn h + b_hn) one block further on."""
        return {"SKIP_FROM": 2 * hidden, "SKIP": hidden} if self.saved_gates > self.gates else {"SKIP_FROM": 0, "SKIP": 0}


RNN_CELL = Cell("RNN", 1, 1, "rnn/forward_step.comp", "rnn/backward_step.comp", False, False)
LSTM_CELL = Cell("LSTM", 4, 4, "lstm/forward_step.comp", "lstm/backward_step.comp", True, True)
GRU_CELL = Cell("GRU", 3, 4, "gru/forward_step.comp", "gru/backward_step.comp", False, True)


def copy_block(device, src, dst, batch: int, width: int, dst_stride: int, dst_offset: int = 0,
               src_stride: int = 0, src_offset: int = 0, first: int = 0, count: int | None = None, name=None):
    """Per sample, `width` floats of dst from dst_offset: src's (from src_offset) at [first, first +
    count), zero elsewhere (shaders/rnn/copy_block.comp). src None: zeros."""
    count = width if count is None else count
    program = device.program(_COPY)
    return device.dispatch(
        program, {"src": src if src is not None else device.placeholder, "dst": dst},
        device.grid_1d(batch * width, program.local_size[0]),
        {"BATCH": batch, "WIDTH": width, "DST_STRIDE": dst_stride, "DST_OFFSET": dst_offset,
         "SRC_STRIDE": src_stride, "SRC_OFFSET": src_offset, "FIRST": first, "COUNT": count if src is not None else 0},
        name=name)


class Recurrent(Module):
    """The shared machinery of RNN, LSTM and GRU (see the module docstring)."""

    cell: Cell
    backward_reads = ("x",)     # the input sequence and lengths (saved by forward); the states it
                                # needs are its own saved copies, never its output

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 return_state: bool = False, name: str | None = None):
        kind = type(self).__name__
        for what, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not is_int(value) or value < 1:
                raise ValueError(f"{kind}: {what} must be a positive int, got {value!r}")
        for what, value in (("bias", bias), ("batch_first", batch_first), ("return_state", return_state)):
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{kind}: {what} must be a bool, got {value!r}")
        if dropout != 0:
            raise ValueError(f"{kind}: dropout between layers is not supported (got {dropout!r}); "
                             "stack layers with vb.Dropout between them instead")
        if bidirectional:
            raise ValueError(f"{kind}: bidirectional=True is not supported")
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.return_state = bool(bias), bool(batch_first), bool(return_state)
        self.name = name
        self._inputs = None       # the roles of a call's inputs, fixed by the first call
        # torch's initialisation: U(-1/sqrt(hidden), 1/sqrt(hidden)) for every weight and bias.
        bound, rng, rows = 1.0 / math.sqrt(self.hidden_size), random.generator(), self.cell.gates * self.hidden_size
        self._init = {}
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else self.hidden_size
            shapes = {"weight_ih": (rows, width), "weight_hh": (rows, self.hidden_size)}
            if self.bias:
                shapes.update(bias_ih=(rows,), bias_hh=(rows,))
            for key, shape in shapes.items():
                self._init[f"{key}_l{layer}"] = rng.uniform(-bound, bound, shape).astype(np.float32)

    def _extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        text = f"{type(self).__name__}({self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        text += self._extra_repr()
        for what, default in (("bias", True), ("batch_first", False), ("return_state", False)):
            if getattr(self, what) != default:
                text += f", {what}={getattr(self, what)}"
        return text + ")"

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._init.items()}

    # --- graph -----------------------------------------------------------------------------
    @property
    def state_names(self) -> tuple:
        return ("h", "c") if self.cell.has_cell_state else ("h",)

    def __call__(self, x, hx=None, lengths=None):
        """`layer(x)`, `layer(x, h0)` / LSTM `layer(x, (h0, c0))`, optionally `lengths=`."""
        states = []
        if hx is not None:
            states = list(hx) if self.cell.has_cell_state and isinstance(hx, (tuple, list)) else [hx]
            if len(states) != len(self.state_names):
                raise ValueError(f"{self!r}: the initial state is {' and '.join(n + '0' for n in self.state_names)}"
                                 f"{' as a tuple' if len(self.state_names) > 1 else ''}, got {hx!r}")
        roles = ("input",) + tuple(n + "0" for n in self.state_names if states) + (("lengths",) if lengths is not None else ())
        if self._inputs is not None and self._inputs != roles:
            raise ValueError(f"{self!r}: every call of one layer takes the same inputs; the first took "
                             f"{list(self._inputs)}, this one {list(roles)}")
        self._inputs = roles
        return super().__call__(x, *states, *([lengths] if lengths is not None else []))

    def check_input_values(self, index: int, values: np.ndarray, in_shapes: list) -> None:
        roles = self._inputs or ("input",)
        if roles[index] == "lengths":
            from ..checks import integers_in
            integers_in(values, 1, in_shapes[0][0], repr(self), "lengths")

    def output_shape(self, *shapes: tuple) -> tuple:
        roles = self._inputs or ("input",)
        if len(shapes) != len(roles):
            raise ValueError(f"{self!r} takes inputs {list(roles)}, got {len(shapes)}")
        shape = {role: tuple(s) for role, s in zip(roles, shapes)}
        x = shape["input"]
        if len(x) != 2 or x[1] != self.input_size:
            raise ValueError(f"{self!r} needs a (steps, {self.input_size}) input per sample, got {x}")
        for n in self.state_names:
            if n + "0" in shape and shape[n + "0"] != (self.num_layers, self.hidden_size):
                raise ValueError(f"{self!r}: {n}0 must be ({self.num_layers}, {self.hidden_size}) per sample, "
                                 f"got {shape[n + '0']}")
        if "lengths" in shape and shape["lengths"] != (1,):
            raise ValueError(f"{self!r}: lengths must be one value per sample, got shape {shape['lengths']}")
        return (x[0] + self._state_rows, self.hidden_size)

    @property
    def _state_rows(self) -> int:
        """Rows of final states after the output sequence (return_state)."""
        return self.num_layers * len(self.state_names) if self.return_state else 0

    def split(self, value):
        """torch's return value from a return_state=True call's output: (output, h_n) or, for
        LSTM, (output, (h_n, c_n)), as graph values (T, H) and (num_layers, H)."""
        if not self.return_state:
            raise ValueError(f"{self!r}: split needs return_state=True")
        steps = value.shape[0] - self._state_rows
        output = Narrow(1, 0, steps)(value)
        states = tuple(Narrow(1, steps + k * self.num_layers, self.num_layers)(value)
                       for k in range(len(self.state_names)))
        return output, (states if self.cell.has_cell_state else states[0])

    # --- dispatches ------------------------------------------------------------------------
    def _sizes(self, io: LayerIO) -> tuple:
        steps = io.in_shapes[0][0]
        return io.batch, steps, self.hidden_size, io.y.shape[-1]

    def _inputs_of(self, io: LayerIO, buffers: list) -> dict:
        return dict(zip(self._inputs or ("input",), buffers))

    def _step_dispatches(self, io: LayerIO, shader: str, buffers: dict, texel_quads: dict, steps: int,
                         constants: dict, clocks) -> list:
        """`steps` dispatches of one step shader: two recorded dispatches (clock 0 -> 1, 1 -> 0)
        alternating; each entry is its own Dispatch object (named by step) sharing their op.
        `texel_quads` are the quads it reads through common/vec4_input.glsl, as texels where the
        device prefers them: forward's W_hh and h, backward's W_hh^T and the gate gradients (h and
        the gate gradients those of the step before, written by the previous dispatch). An
        invocation computes a hidden unit of `SAMPLES` samples (Device.samples_per_step_invocation)."""
        device, hidden, batch = io.device, self.hidden_size, io.batch
        program = device.program(shader, device.read_defines(texel_quads.values()))
        blocks = -(-batch // constants["SAMPLES"])
        groups = device.grid_1d(blocks * hidden, program.local_size[0])
        buffers = {**buffers, **quad_views(program, buffers), **texel_quads}
        pair = [device.dispatch(program, dict(buffers, clock_in=a, clock_out=b), groups, constants)
                for a, b in (clocks, clocks[::-1])]
        return [dataclasses.replace(pair[k % 2], name=f"{shader} step {k}") for k in range(steps)]

    def _step_constants(self, io, out_stride: int, lengths) -> dict:
        batch, steps, hidden, _ = self._sizes(io)
        return {"BATCH": batch, "STEPS": steps, "HIDDEN": hidden, "OUT_STRIDE": out_stride,
                "HAS_LENGTHS": lengths is not None, "SAMPLES": self._samples(io.device)}

    def _samples(self, device) -> int:
        """Samples per invocation of the step shaders: the device's choice where the hidden size is
        a multiple of 4 (the quads' loops, where a block of samples shares the weights' loads),
        else 1; 1 too where a block would take an invocation past the device's loop limit
        (lavapipe's counts all of an invocation's loops together)."""
        samples = device.samples_per_step_invocation if self.hidden_size % 4 == 0 else 1
        limit = device.loop_limit
        return 1 if limit is not None and max(self._step_loops(samples)) > limit else samples

    def _step_loops(self, samples: int) -> tuple[int, int]:
        """Loop iterations per invocation of the forward and backward step shaders, at worst: for
        one sample the rows summed float by float (the quads' loops run fewer); for a block, on
        quads, each quad of the sums' loop running the loops over the gates and the block's samples,
        with room for the loops before and after it."""
        gates, saved, hidden = self.cell.gates, self.cell.saved_gates, self.hidden_size
        if samples == 1:
            return gates * (hidden + 1) + 8, gates * hidden + saved + 8
        quads = hidden // 4
        return ((quads + 4) * (samples + 1) * (gates + 3) + 8,
                (gates * quads + 4) * (samples + 2) + (samples + 1) * (saved + 2) + 8)

    def forward(self, io: LayerIO) -> list:
        device, cell = io.device, self.cell
        batch, steps, hidden, out_width = self._sizes(io)
        inputs = self._inputs_of(io, io.xs)
        rows = cell.gates * hidden
        device.check_loop(self._step_loops(self._samples(device))[0], f"{cell.forward_shader} (hidden {hidden})")
        buf = lambda name, shape: device.buffer(f"{io.y.name}.{name}", shape)
        saved = io.saved
        saved["clocks"] = (buf("clock0", (1,)), buf("clock1", (1,)))
        placeholder, lengths = device.placeholder, inputs.get("lengths")
        work, x, width = [], inputs["input"], self.input_size
        for layer in range(self.num_layers):
            last = layer == self.num_layers - 1
            p = lambda key: io.params.get(f"{key}_l{layer}", placeholder)
            states = {n: buf(f"{n}{layer}", (batch, steps + 1, hidden)) for n in self.state_names}
            projected = buf(f"projected{layer}", (batch, steps, rows))
            gates = buf(f"gates{layer}", (batch, steps, cell.saved_gates * hidden)) if cell.saves_gates else None
            y = io.y if last else buf(f"output{layer}", (batch, steps * hidden))
            saved[layer] = {"x": x, "width": width, **states, "gates": gates}
            work.append(self._projection(device, {"x": x, "weight_ih": p("weight_ih"), "bias_ih": p("bias_ih"),
                                                  "projected": projected}, batch * steps, rows, width))
            for n, state in states.items():     # s_0 = the given initial state, else 0
                work.append(copy_block(device, inputs.get(n + "0"), state, batch, hidden, (steps + 1) * hidden,
                                       src_stride=self.num_layers * hidden, src_offset=layer * hidden))
            work.append(fill(device, saved["clocks"][0], 0.0))
            buffers = {"lengths": lengths or placeholder, "weight_hh": p("weight_hh"), "projected": projected,
                       "bias_hh": p("bias_hh"), "y": y, **states}
            if gates is not None:
                buffers["gates"] = gates
            constants = dict(self._step_constants(io, out_width if last else steps * hidden, lengths),
                             HAS_BIAS=self.bias, **self._cell_constants())
            work += self._step_dispatches(io, cell.forward_shader, buffers,
                                          {"weight_hh4": p("weight_hh"), "h4": states["h"]}, steps, constants,
                                          saved["clocks"])
            if self.return_state:             # final states after the sequence: rows T + k * L + layer
                for k, (n, state) in enumerate(states.items()):
                    work.append(copy_block(device, state, io.y, batch, hidden, out_width,
                                           (steps + k * self.num_layers + layer) * hidden,
                                           (steps + 1) * hidden, steps * hidden))
            x, width = y, hidden
        return work

    def _cell_constants(self) -> dict:
        return {}

    def _projection(self, device, buffers: dict, positions: int, rows: int, width: int):
        """The input part of every gate at every step: one GEMM, on the vec4 shuffle core where its
        quads are whole (input features and gate rows multiples of 4), else the scalar core."""
        constants = {"HAS_BIAS": self.bias}
        if rows % 4 == 0 and gemm_shuffle.applies(device, positions, rows, width, b_n_contiguous=False):
            return gemm_shuffle.shuffle_dispatch(device, _PROJECTION_SHUFFLE, buffers, positions, rows, width, constants)
        return gemm_dispatch(device, _PROJECTION, buffers, positions, rows, width, constants)

    def backward(self, io: LayerIO) -> list:
        device, cell = io.device, self.cell
        batch, steps, hidden, out_width = self._sizes(io)
        inputs, dxs = self._inputs_of(io, io.xs), self._inputs_of(io, io.dxs)
        device.check_loop(self._step_loops(self._samples(device))[1], f"{cell.backward_shader} (hidden {hidden})")
        buf = lambda name, shape: device.buffer(f"{io.y.name}.{name}", shape)
        saved, saved_width = io.saved, cell.saved_gates * hidden
        # Scratch shared by the layers of the stack (each layer's backward is done before the next starts).
        dgates = buf("dgates", (batch, steps, saved_width))
        carries = {n: buf(f"d{n}_carry", (batch, hidden)) for n in self.state_names}
        dsequence = buf("dsequence", (batch, steps * hidden)) if self.num_layers > 1 else None
        lengths, placeholder = inputs.get("lengths"), device.placeholder
        work, dy, dy_stride = [], io.dy, out_width
        for layer in reversed(range(self.num_layers)):
            s = saved[layer]
            for k, n in enumerate(self.state_names):   # dL/d(final state), if it is an output
                work.append(copy_block(device, io.dy if self.return_state else None, carries[n], batch, hidden,
                                       hidden, src_stride=out_width,
                                       src_offset=(steps + k * self.num_layers + layer) * hidden))
            work.append(fill(device, saved["clocks"][0], float(steps - 1)))
            weight_hh = io.params[f"weight_hh_l{layer}"]
            transposed, transpose = self._transposed(io, weight_hh)
            work += transpose
            buffers = {"lengths": lengths or placeholder, "weight_hh": weight_hh, "dy": dy,
                       "dgates": dgates, "dh_carry": carries["h"],
                       **({"c": s["c"], "dc_carry": carries["c"]} if cell.has_cell_state else {"h": s["h"]}),
                       **({"gates": s["gates"]} if cell.saves_gates else {})}
            work += self._step_dispatches(io, cell.backward_shader, buffers,
                                          {"weight_hh_t": transposed, "dgates4": dgates}, steps + 1,
                                          dict(self._step_constants(io, dy_stride, lengths), **self._cell_constants()),
                                          saved["clocks"])
            work += self._parameter_gradients(io, layer, dgates, s)
            for n in self.state_names:       # dL/d(initial state) is left in the carries
                if dxs.get(n + "0") is not None:
                    work.append(copy_block(device, carries[n], dxs[n + "0"], batch, hidden,
                                           self.num_layers * hidden, layer * hidden, hidden))
            dx = dsequence if layer > 0 else dxs["input"]
            if dx is not None:
                work.append(self._input_gradient(device, {"dgates": dgates, "weight_ih": io.params[f"weight_ih_l{layer}"],
                                                          "dx": dx}, batch * steps, s["width"], cell.gates * hidden,
                                                 saved_width))
            dy, dy_stride = dsequence, steps * hidden
        if dxs.get("lengths") is not None:    # lengths only select steps: no gradient
            work.append(fill(device, dxs["lengths"], 0.0))
        return work

    def _transposed(self, io: LayerIO, weight_hh) -> tuple:
        """(W_hh^T, the dispatches writing it) for the backward step's quads where the hidden size
        is a multiple of 4, else (the placeholder, none): the step reads W_hh itself."""
        device, hidden = io.device, self.hidden_size
        if hidden % 4:
            return device.placeholder, []
        rows = self.cell.gates * hidden
        transposed = device.buffer(f"{weight_hh.name}.T", (hidden, rows))
        program = device.program(_TRANSPOSE)
        return transposed, [device.dispatch(program, {"weight_hh": weight_hh, "weight_hh_t": transposed},
                                            device.grid_1d(rows * hidden, program.local_size[0]),
                                            {"ROWS": rows, "HIDDEN": hidden})]

    def _parameter_gradients(self, io: LayerIO, layer: int, dgates, s: dict) -> list:
        """Weights and biases: sums over every time step and sample of the gate gradients."""
        device, cell = io.device, self.cell
        batch, steps, hidden, _ = self._sizes(io)
        rows, saved_width, positions = cell.gates * hidden, cell.saved_gates * hidden, batch * steps
        skip = cell.hidden_skip(hidden)
        grads = lambda key: io.grads[f"{key}_l{layer}"]
        work = [self._weight_gradient(device, {"dgates": dgates, "x": s["x"], "dweight": grads("weight_ih")},
                                      rows, s["width"], steps, positions, steps * s["width"], saved_width,
                                      {"SKIP_FROM": 0, "SKIP": 0}),
                self._weight_gradient(device, {"dgates": dgates, "x": s["h"], "dweight": grads("weight_hh")},
                                      rows, hidden, steps, positions, (steps + 1) * hidden, saved_width, skip)]
        if self.bias:
            device.check_loop(positions + 1, f"{_BACKWARD_BIAS} ({positions} positions)")
            program = device.program(_BACKWARD_BIAS)
            work.append(device.dispatch(program, {"dgates": dgates, "dbias_ih": grads("bias_ih"),
                                                  "dbias_hh": grads("bias_hh")},
                                        device.grid_1d(rows, program.local_size[0]),
                                        {"ROWS": rows, "POSITIONS": positions, "SAVED": saved_width, **skip}))
        return work

    @staticmethod
    def _input_gradient(device, buffers: dict, positions: int, width: int, rows: int, saved_width: int):
        """dx = dgates W_ih over the input-side gate columns: on the vec4 shuffle core where the
        features, gate rows and dgates rows are whole quads, else the scalar core."""
        constants = {"SAVED": saved_width}
        if (width % 4 == 0 and saved_width % 4 == 0
                and gemm_shuffle.applies(device, positions, width, rows, b_n_contiguous=True)):
            return gemm_shuffle.shuffle_dispatch(device, _BACKWARD_INPUT_SHUFFLE, buffers, positions, width, rows,
                                                 constants)
        return gemm_dispatch(device, _BACKWARD_INPUT, buffers, positions, width, rows, constants)

    @staticmethod
    def _weight_gradient(device, buffers: dict, rows: int, width: int, steps: int, positions: int, x_stride: int,
                         saved_width: int, skip: dict):
        """dweight = dgates^T x summed over the positions (b, t), x's rows `width` wide and `x_stride`
        apart per sample, dgates' columns `skip`ped: on the vec4 shuffle core where all of those
        come in whole quads, else the scalar core."""
        constants = {"STEPS": steps, "X_STRIDE": x_stride, "SAVED": saved_width, **skip}
        if (all(n % 4 == 0 for n in (width, x_stride, saved_width, skip["SKIP_FROM"], skip["SKIP"]))
                and gemm_shuffle.applies(device, rows, width, positions, b_n_contiguous=True, a_m_contiguous=True)):
            return gemm_shuffle.shuffle_dispatch(device, _BACKWARD_WEIGHT_SHUFFLE, buffers, rows, width, positions,
                                                 constants, defines={"A_M_CONTIGUOUS": 1})
        # A 16 x 16 block per invocation on CPU devices: these GEMMs are short and wide (few columns, a
        # long reduction), where the default tile leaves lavapipe's cores idle (measured ~5x faster).
        tile = gemm.CPU_TILE if device.properties["device_type"] == "Cpu" else None
        return gemm_dispatch(device, _BACKWARD_WEIGHT, buffers, rows, width, positions, constants, tile=tile)


class RNN(Recurrent):
    """Elman RNN: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (nonlinearity 'tanh' or 'relu')."""
    cell = RNN_CELL

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 return_state: bool = False, name: str | None = None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         return_state, name)

    @property
    def mode(self) -> str:
        return f"RNN_{self.nonlinearity.upper()}"

    def _extra_repr(self) -> str:
        return "" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity!r}"

    def _cell_constants(self) -> dict:
        return {"RELU": self.nonlinearity == "relu"}


class LSTM(Recurrent):
    """Long short-term memory, gates i, f, g, o: c' = f c + i g, h' = o tanh(c')."""
    cell = LSTM_CELL
    mode = "LSTM"


class GRU(Recurrent):
    """Gated recurrent unit, gates r, z, n: n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
    h' = (1 - z) n + z h."""
    cell = GRU_CELL
    mode = "GRU"


class Narrow(Module):
    """torch.narrow on a value: `length` entries of dimension `dim` (counted with the batch as
    dim 0, so dim >= 1) from `start`. A copy (a slice of each row is not contiguous in the (batch,
    width) storage); backward places dy in a zeroed dx."""

    backward_reads = ()

    def __init__(self, dim: int, start: int, length: int):
        for what, value, low in (("dim", dim, 1), ("start", start, 0), ("length", length, 1)):
            if not is_int(value) or value < low:
                raise ValueError(f"Narrow: {what} must be an int >= {low}, got {value!r}")
        self.dim, self.start, self.length = int(dim), int(start), int(length)

    def __repr__(self) -> str:
        return f"Narrow(dim={self.dim}, start={self.start}, length={self.length})"

    def output_shape(self, *shapes: tuple) -> tuple:
        if len(shapes) != 1:
            raise ValueError(f"{self!r} takes one input, got {len(shapes)}")
        shape = tuple(shapes[0])
        if self.dim > len(shape) or self.start + self.length > shape[self.dim - 1]:
            raise ValueError(f"{self!r} does not fit a per-sample shape {shape}")
        return shape[:self.dim - 1] + (self.length,) + shape[self.dim:]

    def _rows(self, io: LayerIO) -> tuple:
        """(rows, floats per input row, per output row, offset): the narrowed dim's blocks."""
        shape = io.in_shapes[0]
        inner = math.prod(shape[self.dim:])
        rows = io.batch * math.prod(shape[:self.dim - 1])
        return rows, shape[self.dim - 1] * inner, self.length * inner, self.start * inner

    def forward(self, io: LayerIO) -> list:
        rows, width, out, offset = self._rows(io)
        return [copy_block(io.device, io.x, io.y, rows, out, out, src_stride=width, src_offset=offset)]

    def backward(self, io: LayerIO) -> list:
        if io.dx is None:
            return []
        rows, width, out, offset = self._rows(io)
        return [copy_block(io.device, io.dy, io.dx, rows, width, width, src_stride=out, first=offset, count=out)]
