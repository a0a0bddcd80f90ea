"""Stochastic gradient descent on the GPU, like torch.optim.SGD. Without momentum, one dispatch
updates up to 6 parameters (like torch's foreach kernels; the same values as one by one)."""

from __future__ import annotations

import numpy as np

from ..layers.activation import elementwise
from .base import Optimizer, check_bool, check_number


class SGD(Optimizer):
    """torch.optim.SGD(lr, momentum=0, dampening=0, weight_decay=0, nesterov=False):

        g = grad + weight_decay * param
        momentum > 0:  buf = g on the first step, else buf = momentum * buf + (1 - dampening) * g;
                       g = g + momentum * buf (nesterov) or g = buf
        param -= lr * g

    `lr`, `weight_decay` and `schedule` may change between steps (no re-recording); `momentum`,
    `dampening` and `nesterov` are fixed when the optimizer is made (they decide the shader and
    whether there is a momentum buffer). The momentum buffer belongs to the Trainer's plan: its
    first step is that trainer's first step."""

    def __init__(self, lr: float, momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, *, schedule=None):
        self.lr = lr
        self._momentum = check_number(self, "momentum", momentum, minimum=0.0)
        self._dampening = check_number(self, "dampening", dampening)
        self.weight_decay = weight_decay
        self._nesterov = check_bool(self, "nesterov", nesterov)
        if self._nesterov and (self._momentum <= 0 or self._dampening != 0):
            raise ValueError(f"SGD: nesterov=True requires momentum > 0 and dampening = 0, "
                             f"got momentum={momentum!r}, dampening={dampening!r}")
        self.schedule = schedule

    @property
    def momentum(self) -> float:
        return self._momentum

    @property
    def dampening(self) -> float:
        return self._dampening

    @property
    def nesterov(self) -> bool:
        return self._nesterov

    def __repr__(self) -> str:
        args = [f"lr={self.lr}"]
        defaults = (("momentum", 0.0), ("dampening", 0.0), ("weight_decay", 0.0), ("nesterov", False))
        args += [f"{k}={getattr(self, k)}" for k, d in defaults if getattr(self, k) != d]
        args += [f"schedule={self.schedule!r}"] if self.schedule is not None else []
        return f"SGD({', '.join(args)})"

    def hyper_values(self, step: int) -> np.ndarray:
        # [lr, weight_decay, momentum, 1 - dampening, first]; both shaders read this layout.
        return np.array([self.lr_at(step), self.weight_decay, self.momentum, 1.0 - self.dampening,
                         1.0 if step == 0 else 0.0], dtype=np.float32)

    def state_shapes(self, param_shape: tuple) -> dict:
        return {"momentum_buffer": tuple(param_shape)} if self.momentum > 0 else {}

    def update(self, device, hyper, param, grad, state: dict, guard):
        if self.momentum == 0:
            return self.updates(device, hyper, [(param, grad, state)], guard)[0]
        buffers = {"hyper": hyper, "grad": grad, "param": param, "guard": guard,
                   "momentum_buffer": state["momentum_buffer"]}
        return elementwise(device, "sgd/momentum.comp", buffers, param.size, {"NESTEROV": self.nesterov},
                           name=f"sgd {param.name}")

    def updates(self, device, hyper, items: list, guard) -> list:
        if self.momentum > 0:
            return super().updates(device, hyper, items, guard)
        program = device.program("sgd/update.comp")
        slots = foreach_slots(program)
        return [_foreach_update(device, program, hyper, guard, [(param, grad) for param, grad, _ in items[i:i + slots]])
                for i in range(0, len(items), slots)]


def foreach_slots(program) -> int:
    """Parameters one dispatch of a foreach update shader takes: its param<j> bindings."""
    return program.slots("param")


def _foreach_update(device, program, hyper, guard, pairs: list):
    """One dispatch of sgd/update.comp over as many (param, grad) pairs as it has slots, or fewer:
    parameter j gets GROUPS<j> consecutive workgroups, sized like `elementwise`'s grid
    (Device.quads_per_invocation quads per invocation). Unused slots repeat the first pair and get
    no workgroups: a spare buffer there would still count as written (the validation layer's
    hazard tracking counts bindings). `program` gives the slots and the workgroup size; the
    dispatch compiles the texel or storage-read variant its buffers allow."""
    local, slots = program.local_size[0], foreach_slots(program)
    buffers, quad_reads, constants, groups = {"hyper": hyper, "guard": guard}, {}, {}, 0
    for j in range(slots):
        param, grad = pairs[j] if j < len(pairs) else pairs[0]
        buffers.update({f"param{j}": param, f"param{j}_quads": param, f"grad{j}": grad})
        quad_reads.update({f"param{j}_in": device.quad_view(param), f"grad{j}_quads": device.quad_view(grad)})
        if j < len(pairs):
            count = min(max(1, -(-param.size // (4 * device.quads_per_invocation * local))), MAX_GROUPS)
            device.check_loop(-(-param.size // (4 * count * local)) + 4, f"sgd/update.comp over {param.name}")
            constants.update({f"NUMEL{j}": param.size, f"GROUPS{j}": count})
            groups += count
    program = device.program(program.path, device.read_defines(quad_reads.values()))   # texel or storage reads
    return device.dispatch(program, {**buffers, **quad_reads}, (groups, 1, 1), constants,
                           name=f"sgd {', '.join(param.name for param, _ in pairs)}")


# Workgroups per parameter at most (their invocations loop over the rest): the grid's x count stays
# below Vulkan's guaranteed 65,535 for every slot together.
MAX_GROUPS = 8192
