"""Linear: y = x W^T + b, with PyTorch's parameter names, shapes and initialisation."""

from __future__ import annotations

import math

import numpy as np

from .. import random
from .base import LayerIO, Module
from . import gemm_shuffle
from .gemm import gemm_dispatch


# The passes `_gemm` picks a core for: (scalar core shader, vec4 + subgroup-shuffle core shader).
# (The weight gradient picks in `_weight_gradients`: the vec4 core's A layout differs there.)
_SHADERS = {"forward": ("linear/forward.comp", "linear/forward_shuffle.comp"),
            "backward_input": ("linear/backward_input.comp", "linear/backward_input_shuffle.comp")}


class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, name: str | None = None):
        for what, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Linear: {what} must be a positive int, got {value!r}")
        self.in_features, self.out = int(in_features), int(out_features)
        self.bias = bool(bias)
        self.name = name
        # torch.nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
        bound = 1.0 / math.sqrt(self.in_features)
        rng = random.generator()
        self._init = {"weight": rng.uniform(-bound, bound, (self.out, self.in_features)).astype(np.float32)}
        if self.bias:
            self._init["bias"] = rng.uniform(-bound, bound, self.out).astype(np.float32)

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out}, bias={self.bias})"

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._init.items()}

    def out_features(self, *in_features: int) -> int:
        in_features = super().out_features(*in_features)  # exactly one input
        if in_features != self.in_features:
            raise ValueError(f"{self!r} takes {self.in_features} input features, got {in_features}")
        return self.out

    def _gemm(self, io, pass_: str, buffers: dict, m: int, n: int, k: int, a_k: bool, b_n: bool, constants=None):
        """One of the three GEMMs: the vec4 + shuffle core where it applies, else the scalar core."""
        scalar, shuffle = _SHADERS[pass_]
        if a_k and gemm_shuffle.applies(io.device, m, n, k, b_n):
            return gemm_shuffle.shuffle_dispatch(io.device, shuffle, buffers, m, n, k, constants)
        return gemm_dispatch(io.device, scalar, buffers, m, n, k, constants)

    backward_reads = ("x",)     # dW = dy^T x, dx = dy W: never its output
    # A following ReLU can be applied as the forward GEMM's epilogue (one dispatch and barrier less).
    epilogues = ("relu",)
    # A preceding ReLU's backward can be applied as the input-gradient GEMM's epilogue (same saving),
    # and the GEMM can add dx to other consumers' partials (common/dx_epilogue.glsl).
    dx_epilogues = ("relu",)
    accumulates_dx = True

    def forward(self, io: LayerIO) -> list:
        bias = io.params["bias"] if self.bias else io.device.placeholder
        buffers = {"x": io.x, "weight": io.params["weight"], "bias": bias, "y": io.y}
        constants = {"HAS_BIAS": self.bias, "RELU": io.epilogue == "relu"}
        if self._few_outputs(io):
            # y^T = W x^T: A = W is [out][in], B = x^T is stored [batch][in] (n-major); stored transposed.
            return [gemm_shuffle.shuffle_dispatch(io.device, "linear/forward_shuffle_t.comp", buffers, self.out,
                                                  io.batch, self.in_features, constants, tile=gemm_shuffle.FEW_ROWS_TILE)]
        # y = x W^T: A = x is [batch][in] (k-contiguous), B = W^T is stored [out][in] (n-major).
        return [self._gemm(io, "forward", buffers, io.batch, self.out, self.in_features, True, False, constants)]

    def _few_outputs(self, io: LayerIO) -> bool:
        """Whether the forward GEMM runs transposed on the vec4 core: with at most a quarter of a
        workgroup's columns of outputs, most lanes of the usual orientation would idle."""
        return (4 * self.out <= gemm_shuffle.columns(gemm_shuffle.TILE)
                and gemm_shuffle.applies(io.device, self.out, io.batch, self.in_features, False))

    def backward(self, io: LayerIO) -> list:
        # dW, db and dx only read dy (or its copy), x and W: no barriers between them.
        copy, dyt, work = self._weight_gradients(io)
        if io.dx is not None:
            work.append(self._input_gradient(io, dyt))
        return copy + work

    def _weight_gradients(self, io: LayerIO) -> tuple:
        """dW = dy^T x over the batch (A = dy^T, B = x is [batch][in]) and db: (the dispatch copying
        dy to [out][batch], if any, as a list; that copy or None; the dW and db dispatches). The vec4
        core reads A where dy lies when dy's rows are whole quads (out % 4 == 0, any batch), else from
        the copy (batch % 4 == 0); its first column of workgroups sums dbias. When the plan asks
        (`io.squares`), its epilogue also leaves the gradients' sums of squares as partial sums."""
        device = io.device
        in_place = gemm_shuffle.applies(device, self.out, self.in_features, io.batch, True, a_m_contiguous=True)
        if in_place or gemm_shuffle.applies(device, self.out, self.in_features, io.batch, True):
            copy, dyt = ([], None) if in_place else self._transposed_dy(io)
            a = {"dy": io.dy} if in_place else {"dyt": dyt}
            # Without a bias nothing is stored there, but the binding is writable: a buffer of its own, so
            # the hazard tracker orders nothing else after it (the shared placeholder would be).
            bias = io.grads["bias"] if self.bias else device.buffer(f"{io.dy.name}.no dbias", (1,))
            if self.bias:
                device.check_loop(io.batch + 1, f"linear/backward_weight_shuffle.comp's bias sums (batch {io.batch})")
            buffers = {**a, "x": io.x, "dweight": io.grads["weight"], "dbias": bias}
            defines = {"A_M_CONTIGUOUS": int(in_place)}
            squares = {}   # gradient name -> its binding for the epilogue's sums of squares (GRAD_SQUARES)
            if io.squares is not None:   # one partial sum per invocation, made with the dispatch
                squares = {name: f"d{name}_squares" for name in io.grads}
                defines["GRAD_SQUARES"] = 1
                if not self.bias:
                    buffers["dbias_squares"] = bias   # never written without a bias
            dw = gemm_shuffle.shuffle_dispatch(
                device, "linear/backward_weight_shuffle.comp", buffers, self.out, self.in_features, io.batch,
                {"HAS_BIAS": self.bias}, defines=defines,
                per_invocation={binding: f"{io.grads[name].name}.squares" for name, binding in squares.items()})
            if squares:
                io.squares.update({name: dw.bound[binding] for name, binding in squares.items()})
            return copy, dyt, [dw]
        # The scalar core reads A = dy^T where it lies (m-contiguous); the bias sums on their own.
        work = [gemm_dispatch(device, "linear/backward_weight.comp", {"dy": io.dy, "x": io.x, "dweight": io.grads["weight"]},
                              self.out, self.in_features, io.batch)]
        if self.bias:
            device.check_loop(io.batch + 1, f"linear/backward_bias.comp (batch {io.batch})")  # +1: the exit
            program = device.program("linear/backward_bias.comp")
            work.append(device.dispatch(program, {"dy": io.dy, "dbias": io.grads["bias"]},
                                        device.grid_1d(self.out, program.local_size[0]), dict(B=io.batch, N=self.out)))
        return [], None, work

    def _input_gradient(self, io: LayerIO, dyt):
        """dx = dy W: A = dy is [batch][out], B = W is [out][in]. With dy's transposed copy (out % 4
        != 0) the vec4 core reads that instead, as A stored [K][M]."""
        buffers = {"weight": io.params["weight"], "dx": io.dx, "x": io.x,
                   "partials": io.dx_partials or io.device.placeholder}
        constants = {"RELU_BACKWARD": io.dx_epilogue == "relu", "ACCUMULATE": io.dx_partials is not None}
        if dyt is not None and gemm_shuffle.applies(io.device, io.batch, self.in_features, self.out, True,
                                                    a_m_contiguous=True):
            return gemm_shuffle.shuffle_dispatch(io.device, "linear/backward_input_shuffle.comp", {"dyt": dyt, **buffers},
                                                 io.batch, self.in_features, self.out, constants,
                                                 defines={"A_M_CONTIGUOUS": 1})
        return self._gemm(io, "backward_input", {"dy": io.dy, **buffers}, io.batch, self.in_features, self.out,
                          True, True, constants)

    def _transposed_dy(self, io: LayerIO) -> tuple:
        """([the dispatch copying dy to [out][batch] float by float for the vec4 core], the copy)."""
        device = io.device
        dyt = device.buffer(f"{io.dy.name}.T", (self.out, io.batch))
        program = device.program("linear/transpose_dy.comp")
        device.check_loop(io.batch + 1, f"linear/transpose_dy.comp (batch {io.batch})")
        return [device.dispatch(program, {"dy": io.dy, "dyt": dyt}, (-(-self.out // program.local_size[0]), 1, 1),
                                dict(B=io.batch, N=self.out))], dyt
