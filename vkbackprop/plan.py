"""The plan of a model at one batch size: every buffer allocated once, and two sequences recorded
once: the training step and the forward pass for prediction. Nothing is re-recorded later. (A third,
`init`, runs once when the plan is made: it zeroes the optimizer state.)

Gradients that receive several partials (a value read by several layers, an output that also feeds
a layer, a layer called twice sharing its parameters) are accumulated here, once, for every layer:
the first contribution to run writes the gradient buffer, each later one adds itself in where its
writer can (`Module.accumulates_dx`: a Linear's or Conv2d's input gradient), else writes a scratch
buffer that an `accumulate` dispatch adds in; an Add hands its inputs its dy buffer itself
(`GradientRouter`). Activation gradients and that scratch share buffers by
lifetime (`BufferPool`, `StepPlan._route`), and so do activations no backward reads
(`StepPlan._allocate_activations`): one pool, so gradients reuse the memory of those activations.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from .device import Buffer
from .layers.activation import elementwise
from .layers.base import LayerIO, backward_reads
from .optim.base import fill
from .schedule import Recorder


# The gradient norm's sums of squares: one workgroup per STAT_CHUNK elements of the largest
# parameter, at most MAX_STAT_PARTS (guard/sum_squares.comp).
STAT_CHUNK = 65536
MAX_STAT_PARTS = 64


def stats_per_dispatch(program) -> int:
    """Buffers one guard/sum_squares.comp dispatch sums: its values<j> bindings (each also bound as
    quads<j>)."""
    return program.slots("values")


class BufferPool:
    """Device buffers handed out for a stretch of the step and taken back after it, to be handed
    out again (same shape and dtype) to work recorded later: the hazard tracker puts a barrier
    between the last reader of one use and the first writer of the next."""

    def __init__(self, device, name: str):
        self.device, self.name = device, name
        self.free = collections.defaultdict(list)   # (shape, dtype) -> buffers not in use
        self.made = []                               # every buffer this pool allocated

    def take(self, shape, dtype=np.float32):
        free = self.free[(tuple(shape), np.dtype(dtype))]
        if free:
            return free.pop()
        buffer = self.device.buffer(f"{self.name} {len(self.made)}", shape, dtype)
        self.made.append(buffer)
        return buffer

    def give(self, buffer) -> None:
        """`buffer`'s last use is recorded; later work may have it."""
        self.free[(buffer.shape, buffer.dtype)].append(buffer)


class GradientRouter:
    """The activation gradients of backward: the buffer holding each gradient's contributions so
    far, the buffer each contribution writes and the additions that follow.

    A gradient's buffer comes from `pool` at its first contribution. A layer that passes dy on to
    its inputs (`Module.passes_dy`: Add) hands them its dy buffer itself instead of copies, so one
    buffer may hold several gradients (`holders` counts them) and goes back to the pool when the
    last lets go of it. A buffer is never written while another gradient holds it: a later
    contribution to one of them sums into a buffer of its own. A later contribution whose writer
    cannot add as it stores (`writer_adds`) writes scratch, which an addition then sums in. Scratch
    and released buffers are free again once the call is recorded (`settle`: not before, so that
    two contributions of one call never share a buffer)."""

    def __init__(self, device, pool: BufferPool):
        self.device, self.pool = device, pool
        self.sums = {}                          # gradient key -> buffer holding its contributions so far
        self.holders = collections.Counter()    # buffer -> gradients holding it (taken ones until released)
        self.parameter_contributions = collections.Counter()   # parameter key -> contributions so far
        self.settled = []                       # scratch and released buffers, free after the call

    def contribution(self, key, shape, label: str, writer_adds: bool = False) -> tuple:
        """(buffer the contribution writes, earlier partials its writer adds to as it stores or None,
        addition to record after the writer or None). Every sum is total + part, the order and
        bits of graph/accumulate.comp: whether the writer or an addition computes it."""
        total = self.sums.get(key)
        if total is None:
            return self._hold(key, self.pool.take(shape)), None, None
        into = self._own(key, total)
        if writer_adds:
            return into, total, None
        part = self.scratch(shape)
        return part, None, self._addition(total, part, into, label)

    def pass_on(self, key, buffer, label: str):
        """A contribution that is `buffer` itself (a layer's dy, passed on): the gradient holds it if
        it has no contribution yet, else it is added in. Returns the addition or None."""
        total = self.sums.get(key)
        if total is None:
            self._hold(key, buffer)
            return None
        return self._addition(total, buffer, self._own(key, total), label)

    def parameter(self, key, total, label: str) -> tuple:
        """(buffer a contribution to parameter gradient `total` writes, addition to record after the
        writer or None): the first writes `total`, later ones scratch that an addition sums in."""
        self.parameter_contributions[key] += 1
        if self.parameter_contributions[key] == 1:
            return total, None
        part = self.scratch(total.shape)
        return part, self._addition(total, part, total, label)

    def take(self, key):
        """The gradient's buffer, for its producer's backward, the last to read it (`release` it
        once that is planned); None if nothing contributed to it."""
        return self.sums.pop(key, None)

    def sole_holder(self, buffer) -> bool:
        """Whether no other gradient holds `buffer` than the one taken (it may be written)."""
        return self.holders[buffer] == 1

    def release(self, buffer) -> None:
        """A taken gradient's buffer is read for the last time by the call being planned."""
        self.settled.append(buffer)

    def settle(self) -> None:
        """The call's dispatches and additions are recorded: its scratch and the buffers it released
        are free for later calls."""
        for buffer in self.settled:
            self.holders[buffer] -= 1
            if self.holders[buffer] == 0:
                del self.holders[buffer]
                self.pool.give(buffer)
        self.settled = []

    def _hold(self, key, buffer):
        self.sums[key] = buffer
        self.holders[buffer] += 1
        return buffer

    def _own(self, key, total):
        """The buffer the gradient's next sum goes to: `total` where it alone holds it, else a new one."""
        if self.holders[total] == 1:
            return total
        self.settled.append(total)   # let go of the shared one once the sum that reads it is recorded
        return self._hold(key, self.pool.take(total.shape, total.dtype))

    def scratch(self, shape):
        """A buffer for the call being planned alone: free once it is recorded, unless a gradient
        holds it by then (`pass_on`)."""
        part = self.pool.take(shape)
        self.holders[part] += 1
        self.settled.append(part)
        return part

    def _addition(self, total, part, into, label: str):
        """into = total + part: graph/accumulate.comp in place, else add/forward.comp's a + b."""
        if into is total:
            add = elementwise(self.device, "graph/accumulate.comp", {"part": part, "total": total}, total.size)
        else:
            add = elementwise(self.device, "add/forward.comp", {"a": total, "b": part, "y": into}, total.size,
                              {"RELU": False}, texel_quads={"a4": total, "b4": part})
        add.name = f"accumulate {label}"
        return add


class StepPlan:
    """Buffers and recorded sequences of one (model, losses, optimizer, batch size). The training
    step is built from parts a subclass may record differently (vkbackprop.distributed):
    `forward`, `backward` (the layers' and losses' dispatches, in order), `stats` + `guard_dispatch`
    (gradient norm and NaN/Inf check) and `updates` (the optimizer's dispatches)."""

    # Whether a layer may leave its gradients' sums of squares as partial sums (LayerIO.squares) for
    # the gradient norm, instead of `stats` reading the gradients again. Not where gradients change
    # after backward (the data-parallel plan averages them over ranks first).
    squares_from_writers = True

    def __init__(self, device, model, losses: list, optimizer, batch: int, clip_grad_norm: float | None = None):
        self.device, self.batch = device, batch
        self._allocate_host(model, losses, optimizer)
        self._allocate_device(model, optimizer)
        self._route(model, losses)
        self._plan_guard(clip_grad_norm)
        self.updates = optimizer.updates(device, self.hyper, [(param, self.param_grads[name], self.optimizer_state[name])
                                                              for name, param in model._store.params.items()], self.guard)
        self.train = self._record_train()
        self.init = self._zero_optimizer_state()
        self.predict = Recorder(device)
        self.predict.upload(self.inputs)
        for d in self.inference:
            self.predict.dispatch(d)
        self.predict.download(self.outputs)
        self._params = list(model._store.params.values())

    def recorders(self) -> list:
        """Every sequence this plan runs."""
        return [self.train, self.predict, self.init]

    def device_bytes(self) -> dict:
        """Bytes of device memory this plan holds, by kind, each buffer counted once (in the first
        kind listing it): parameters, activations (inputs and outputs included; a pooled buffer that
        also holds gradients in backward counts here), activation gradients (the rest of the pool:
        gradients and partials' scratch), parameter gradients, optimizer state, and other: any
        further buffer its sequences bind (layers' scratch and saved values, partial sums, the
        loss, ...) but the device's shared 16-byte placeholder."""
        kinds = {"parameters": self._params, "activations": self._values.values(),
                 "activation gradients": self.pool.made, "parameter gradients": self.param_grads.values(),
                 "optimizer state": [b for state in self.optimizer_state.values() for b in state.values()]}
        used = set()
        for recorder in self.recorders():
            for kind, what in recorder.log:
                used |= set(what.bound.values()) if kind == "dispatch" else set(what)
        used.discard(self.device.placeholder)
        counted, sizes = set(), {}
        for kind, buffers in kinds.items():
            buffers = set(buffers) - counted
            sizes[kind] = sum(b.size * b.dtype.itemsize for b in buffers)
            counted |= buffers
        sizes["other"] = sum(b.size * b.dtype.itemsize for b in used - counted)
        return sizes

    def _allocate_host(self, model, losses, optimizer) -> None:
        """Host-staged: only what crosses to the host (inputs, targets, hyper-parameters, losses)."""
        buf, batch = self.device.buffer, self.batch
        suffix = [""] if len(losses) == 1 else [str(i) for i in range(len(losses))]
        self.inputs = [buf(v.name, (batch, v.width), staged=True) for v in model.inputs]
        self.targets = [buf(f"target{s}", loss.target_shape(batch, v.width), loss.target_dtype, staged=True)
                        for s, loss, v in zip(suffix, losses, model.outputs)]
        self.losses = [buf(f"loss{s}", (1,), staged=True) for s in suffix]
        self.hyper = buf("hyper", optimizer.hyper_values(0).shape, staged=True)
        self.step = buf("step", (1,), np.uint32, staged=True)   # counts steps: seeds per-step randomness
        self.dloss = buf("dloss", (1,), staged=True)
        self.device.write(self.dloss, np.ones(1, np.float32))   # dL/dL = 1: the base case

    def _allocate_device(self, model, optimizer) -> None:
        """Device-only: activations (`_allocate_activations`) and the parameter gradients (the
        activations' gradients come from a pool while backward is planned: `_route`). A view's
        output is its input's buffer ("root"), and so is its gradient: views cost no memory and no
        dispatch."""
        buf, store = self.device.buffer, model._store
        root = {id(v): v for v in model.inputs}
        for call in model.calls:
            view = getattr(call.layer, "is_view", False)
            root[id(call.output)] = root[id(call.inputs[0])] if view else call.output
        self.labels = self._call_labels(model)
        self._root = root
        self._fused = self._fusions(model)   # producer call -> the activation call it applies as its epilogue
        # Activations no backward reads, then activation gradients and partials' scratch (`_route`).
        self.pool = BufferPool(self.device, "pooled")
        self._values = self._allocate_activations(model)
        self.outputs = [self._value_of(v) for v in model.outputs]
        self.param_grads = {name: buf(f"{name}.grad", p.shape) for name, p in store.params.items()}
        # Optimizer state (momentum, Adam's moments): device-only, per parameter, zeroed by `init`.
        self.optimizer_state = {name: {s: buf(f"{name}.{s}", shape) for s, shape in optimizer.state_shapes(p.shape).items()}
                                for name, p in store.params.items()}

    def _allocate_activations(self, model) -> dict:
        """id(value) -> its buffer, for every value but views' (`_value_of`). Like PyTorch's saved
        tensors, a value some backward reads (its layers' `backward_reads`), a model input or output
        has a buffer of its own for the whole step (`self._kept`). The others come from `self.pool`:
        taken at their producer's forward, given back after their last reader's (its output taken
        first, so never its own input's buffer), free for other values and then for backward's
        gradients. `_released` makes sure no backward reads one."""
        root, fused, batch = self._root, self._fused, self.batch
        # A fused producer stores its activation's output, which nothing but the activation reads:
        # both values are one slot, named after the activation's output.
        alias = {id(call.output): id(activation.output) for call, activation in fused.items()}

        def slot(value) -> int:
            r = id(root[id(value)])
            return alias.get(r, r)
        kept = {slot(v) for v in model.inputs + model.outputs}
        last_read = {}
        for i, call in enumerate(model.calls):
            reads = backward_reads(call.layer)
            if "y" in reads:
                kept.add(slot(call.output))
            for v in call.inputs:
                last_read[slot(v)] = i
                if "x" in reads:
                    kept.add(slot(v))
        staged = {slot(v) for v in model.outputs}
        slots = {id(v): b for v, b in zip(model.inputs, self.inputs)}
        absorbed = set(fused.values())
        for i, call in enumerate(model.calls):
            out = call.output
            if root[id(out)] is out and call not in absorbed:   # (an absorbed call's producer took its slot)
                key, shape = slot(out), (batch, out.width)
                if key in kept:
                    name = f"{self.labels[fused.get(call, call)]}.output"
                    slots[key] = self.device.buffer(name, shape, staged=key in staged)
                else:
                    slots[key] = self.pool.take(shape)
            for key in {slot(v) for v in call.inputs} - kept:
                if last_read[key] == i:
                    self.pool.give(slots[key])
        self._kept = {slots[key] for key in kept}
        return {id(v): slots[slot(v)] for v in root.values()}

    def _released(self, io: LayerIO) -> tuple:
        """(`io` for backward, with each input and output whose memory forward gave back replaced by
        a stand-in of its name, shape and dtype; the stand-ins). A layer's backward may read their
        sizes, and binding one means its `backward_reads` leaves out what it reads."""
        stand_ins = {b: dataclasses.replace(b, name=f"{b.name} (given back after forward)")
                     for b in self._given_back(io)}
        io = dataclasses.replace(io, xs=[stand_ins.get(b, b) for b in io.xs], y=stand_ins.get(io.y, io.y))
        return io, set(stand_ins.values())

    def _given_back(self, io: LayerIO) -> set:
        """The buffers of the call's inputs and output whose memory forward gives back (pooled)."""
        return {b for b in io.xs + [io.y] if b not in self._kept}

    def _check_saved(self, call, io: LayerIO) -> None:
        """RuntimeError if forward kept, for its backward (`io.saved`), an input or output whose memory
        is given back after forward: the stand-ins of `_released` would not see backward read it."""
        held = self._given_back(io) & _buffers_in(io.saved)
        if held:
            raise RuntimeError(f"plan: {call.layer!r} ({self.labels[call]}) saves {sorted(b.name for b in held)} "
                               "for backward: its backward_reads must name it ('x': its inputs, 'y': its output)")

    def _value_of(self, value):
        return self._values[id(self._root[id(value)])]

    def _route(self, model, losses) -> None:
        """The layers' dispatches: `forward`, `backward` (losses first: the base case, then each call
        in reverse order: the inductive step) and `inference` (the eval-mode forward).

        An activation's gradient lives from its first contribution to its producer's backward, the
        last to read it; its buffer then goes back to `pool` for gradients planned later (as
        PyTorch frees a gradient once its producer's backward has used it), so a chain of layers
        needs a few gradient buffers per shape, not one per layer. Forward gave back the pool's
        activations before backward, so gradients reuse those too. A layer that passes dy on
        (`passes_dy`) gives its inputs its dy buffer itself (`_pass_dy`)."""
        device, store, root = self.device, model._store, self._root
        router = GradientRouter(device, self.pool)

        def label(value) -> str:
            r = root[id(value)]
            return f"{r.name}.grad" if r.call is None else f"{self.labels[r.call]}.output.grad"

        def contribute(value, writer_adds: bool = False) -> tuple:
            """GradientRouter.contribution for the next contribution to dL/d(value)."""
            r = root[id(value)]
            return router.contribution(id(r), (self.batch, r.width), label(value), writer_adds)

        forward, backward = [], []
        for loss, value, target, loss_buf in zip(losses, model.outputs, self.targets, self.losses):
            dpred, _, add = contribute(value)
            backward.append(loss.dispatch(device, self._value_of(value), target, self.dloss, loss_buf, dpred))
            backward += [add] if add else []
            router.settle()
        ios, inference = {}, []
        fused = self._fused
        absorbed = set(fused.values())
        for call in model.calls:
            params = {n: store.params[key] for n, key in model.param_names(call.layer).items()}
            state = {n: store.states[key] for n, key in model.state_names(call.layer).items()}
            ios[call] = LayerIO(device, self.batch, [self._value_of(v) for v in call.inputs],
                                self._value_of(call.output), params=params, step=self.step, state=state,
                                in_shapes=[v.shape for v in call.inputs], out_shape=call.output.shape)
            if call in absorbed:
                continue     # its producer's forward stores this call's output
            io = ios[call]
            if call in fused:   # (its y already is the activation's output buffer)
                io = dataclasses.replace(io, epilogue=fused[call].layer.fusible_as)
            work = [_named(d, self.labels[call]) for d in call.layer.forward(io)]
            self._check_saved(call, io)
            forward += work
            if call.layer.differs_in_eval:   # e.g. dropout: its own eval-mode dispatches (with any epilogue)
                eval_io = dataclasses.replace(io, training=False, dxs=None, grads={}, saved={})
                work = [_named(d, self.labels[call]) for d in call.layer.forward(eval_io)]
            inference += work
        fused_back = self._backward_fusions(model)   # consumer call -> the activation whose backward it applies
        absorbed_back = set(fused_back.values())
        # Producers whose backward also applies their fused activation's to dy (Add's ReLU), where no
        # consumer's backward took that activation's already: producer call -> activation call.
        fused_dy = {call: act for call, act in fused.items()
                    if act.layer.fusible_as in call.layer.dy_prologues and act not in absorbed_back}
        absorbed_dy = set(fused_dy.values())
        # Parameters one call alone writes the gradient of: that writer may also sum its squares.
        writers = collections.Counter(key for call in model.calls for key in model.param_names(call.layer).values())
        self.grad_squares = {}   # parameter name -> buffer of partial sums of its gradient's squares
        for call in reversed(model.calls):
            if getattr(call.layer, "is_view", False) or call in absorbed_back or call in absorbed_dy:
                continue     # a view's output gradient already is its input's; an absorbed call's backward runs
                             # in its neighbour's
            # Every call's output reaches a model output, so has a gradient (a producer that applies its
            # activation's backward starts from the activation's).
            dy = router.take(id(fused_dy[call].output if call in fused_dy else call.output))
            if dy is None:
                raise RuntimeError(f"plan: nothing contributed to the gradient of {self.labels[call]}'s output")
            io, stand_ins = self._released(dataclasses.replace(ios[call], dy=dy))
            adds = []
            keys = model.param_names(call.layer)
            if keys and self.squares_from_writers and all(writers[key] == 1 for key in keys.values()):
                io = dataclasses.replace(io, squares={})
            inputs = call.inputs
            if call in fused_back:   # dx is the activation's input gradient
                io = dataclasses.replace(io, dx_epilogue=fused_back[call].layer.fusible_as)
                inputs = fused_back[call].inputs
            if call in fused_dy:     # dy is the activation's output gradient (y its output: the mask)
                io = dataclasses.replace(io, dy_prologue=fused_dy[call].layer.fusible_as)
            needed = [v for v in inputs if root[id(v)].call is not None]   # model inputs need no gradient
            if call.layer.passes_dy:
                if keys:
                    raise RuntimeError(f"plan: {call.layer!r} ({self.labels[call]}) passes dy on (passes_dy) but has "
                                       f"parameters {sorted(keys)}, whose gradients only its backward could write")
                work, passed = self._pass_dy(call, io, dy, router) if needed else ([], None)
                adds += [add for v in needed if (add := router.pass_on(id(root[id(v)]), passed, label(v)))]
            else:
                adds_as_it_stores = call.layer.accumulates_dx and len(inputs) == 1   # io.dx_partials: one input's
                for i, v in enumerate(inputs):
                    if root[id(v)].call is not None:
                        io.dxs[i], partials, add = contribute(v, adds_as_it_stores)
                        if partials is not None:
                            io = dataclasses.replace(io, dx_partials=partials)
                        adds += [add] if add else []
                for n, key in keys.items():
                    io.grads[n], add = router.parameter(key, self.param_grads[key], self.param_grads[key].name)
                    adds += [add] if add else []
                work = [_named(d, self.labels[call]) for d in call.layer.backward(io)]
            for d in work:
                if stand_ins & set(d.bound.values()):
                    raise RuntimeError(f"plan: {d.name} reads {sorted(b.name for b in stand_ins & set(d.bound.values()))}: "
                                       f"{call.layer!r}'s backward_reads must name it ('x': its inputs, 'y': its output)")
            backward += work + adds
            router.release(dy)   # this backward was its last reader
            router.settle()
            self.grad_squares.update({keys[n]: b for n, b in (io.squares or {}).items()})
        self.forward, self.backward, self.inference = forward, backward, inference

    def _pass_dy(self, call, io: LayerIO, dy, router: GradientRouter) -> tuple:
        """(dispatches, buffer) for a layer whose every input's gradient is its dy (`passes_dy`): dy's
        buffer itself, or where the layer applies its fused activation's backward to dy first
        (`io.dy_prologue`), the buffer its backward writes that into: dy's own (in place) where no
        other gradient holds it, else a new one. The inputs' gradients then hold that buffer."""
        if io.dy_prologue is None:
            return [], dy
        into = dy if router.sole_holder(dy) else router.scratch(dy.shape)
        io = dataclasses.replace(io, dxs=[into] + [None] * (len(io.xs) - 1))
        return [_named(d, self.labels[call]) for d in call.layer.backward(io)], into

    def _fusions(self, model) -> dict:
        """Calls whose forward can also do the next call's activation (a Linear, a BatchNorm or an
        Add followed by a ReLU): {producer call: activation call}. Only where the producer's output
        is read by nothing else (no other layer, view or model output) and the activation behaves
        the same in eval mode (a producer that does not, BatchNorm, applies it in its eval forward
        too): the producer then needs no output buffer of its own, and backward is unchanged (ReLU's
        needs only its output; Linear's and BatchNorm's read their input, not their output; Add's
        reads nothing) unless the producer applies the activation's backward too (`dy_prologues`,
        see _route). The result is bit-identical."""
        readers = self._readers(model)
        fused = {}
        for call in model.calls:
            users = readers.get(id(call.output), [])
            if len(users) != 1 or users[0] is None:
                continue
            user = users[0]
            if (user.layer.fusible_as in call.layer.epilogues and user.inputs == (call.output,)
                    and self._root[id(call.output)] is call.output
                    and self._root[id(user.output)] is user.output and call not in fused.values()
                    and not user.layer.differs_in_eval):
                fused[call] = user
        return fused

    def _backward_fusions(self, model) -> dict:
        """Calls whose backward can also do the previous call's (a ReLU before a Linear: its mask
        is the Linear's input, the ReLU's output): {consumer call: activation call}. Only where the
        activation's output is read by nothing else, so its gradient comes from the consumer alone,
        and the activation comes right before the consumer, so the gradient of the activation's
        input still gets its contributions in the same order. The result is bit-identical."""
        readers = self._readers(model)
        fused = {}
        for before, call in zip(model.calls, model.calls[1:]):
            if (before.layer.fusible_as in call.layer.dx_epilogues and call.inputs == (before.output,)
                    and len(before.inputs) == 1 and readers.get(id(before.output)) == [call]
                    and self._root[id(before.output)] is before.output and before not in fused):
                fused[call] = before
        return fused

    def _readers(self, model) -> dict:
        """id(root value) -> the calls reading it, None for a model output."""
        readers = {}
        for call in model.calls:
            for v in call.inputs:
                readers.setdefault(id(self._root[id(v)]), []).append(call)
        for v in model.outputs:
            readers.setdefault(id(self._root[id(v)]), []).append(None)
        return readers

    def _plan_guard(self, clip_grad_norm) -> None:
        """The guard between backward and the updates: per parameter its gradient's sum of squares
        in `parts` partial sums (then each loss's sum, in the same dispatches) in grad_stats slots,
        then one dispatch for the global norm, the clip coefficient and the NaN/Inf flag, which
        every update reads (guard/*.comp)."""
        device, buf = self.device, self.device.buffer
        self.param_names = list(self.param_grads)
        # Per parameter the sum of its gradient's squares, or of the partial sums its writer left.
        summed = [self.grad_squares.get(name, self.param_grads[name]) for name in self.param_names]
        squared = [name not in self.grad_squares for name in self.param_names]
        # Every parameter's sum in the same number of parts: one per STAT_CHUNK elements of the largest.
        largest = max((b.size for b in summed), default=1)
        parts = min(-(-largest // STAT_CHUNK), MAX_STAT_PARTS)
        nparams = len(self.param_names)
        self.grad_stats = buf("grad_stats", ((nparams + len(self.losses)) * parts,))
        self.guard = buf("guard", (4,), staged=True)
        # The losses ride along (summed, not squared): one more small workgroup each, no dispatch of their own.
        stats = self._stats(device, summed + self.losses, squared + [False] * len(self.losses), parts)
        program = device.program("guard/guard.comp")
        device.check_loop((nparams + len(self.losses)) * (parts + 1) + 2, f"guard/guard.comp ({self.grad_stats.size} slots)")
        clip = clip_grad_norm is not None
        self.stats = stats
        self.guard_dispatch = device.dispatch(
            program, {"grad_stats": self.grad_stats, "guard": self.guard}, (1, 1, 1),
            {"NPARAMS": nparams, "NLOSSES": len(self.losses), "CLIP": clip, "PARTS": parts,
             "MAX_NORM": float(clip_grad_norm) if clip else 1.0}, name="guard")

    def _record_train(self) -> Recorder:
        """One sequence: upload batch -> forward -> loss -> backward -> guard -> updates -> download."""
        train = Recorder(self.device)
        train.upload(self.inputs + self.targets + [self.hyper, self.step])
        for d in self.forward + self.backward + self.stats + [self.guard_dispatch] + self.updates:
            train.dispatch(d)
        train.download(self.losses + [self.guard])
        return train

    def _zero_optimizer_state(self) -> Recorder:
        """Device-only memory starts with whatever was there: zero the optimizer state once, on the GPU."""
        init = Recorder(self.device)
        for state in self.optimizer_state.values():
            for b in state.values():
                init.dispatch(fill(self.device, b, 0.0))
        if init.log:
            init.sequence.eval()
        return init

    def _stats(self, device, buffers: list, squares: list, parts: int) -> list:
        """Dispatches putting, for each buffer b (in order) and part k, the sum of b^2 (squares[b])
        or of b over its k-th of `parts` contiguous chunks into grad_stats[b * parts + k]: a
        workgroup each, fixed order, as many buffers per dispatch as the shader has values<j>."""
        per_dispatch = stats_per_dispatch(device.program("guard/sum_squares.comp"))
        work = []
        for first in range(0, len(buffers), per_dispatch):
            group = buffers[first:first + per_dispatch]
            bound = {f"values{j}": group[j] if j < len(group) else device.placeholder
                     for j in range(per_dispatch)}
            quads = {f"quads{j}": device.quad_view(b) for j, b in enumerate(bound.values())}
            program = device.program("guard/sum_squares.comp", device.read_defines(quads.values()))
            size = program.local_size[0]
            for b in group:
                device.check_loop(-(-b.size // (4 * parts * size)) + 1 + size.bit_length(),
                                  f"guard/sum_squares.comp over {b.name} ({b.size} elements)")
            numel = {f"NUMEL{j}": b.size for j, b in enumerate(group)}
            squared = sum(1 << j for j, square in enumerate(squares[first:first + per_dispatch]) if square)
            work.append(device.dispatch(
                program, {"grad_stats": self.grad_stats, **bound, **quads}, (len(group), parts, 1),
                {"SLOT": first * parts, "SQUARED": squared, "PARTS": parts, **numel},
                name=f"sum_squares {', '.join(b.name for b in group)}"))
        return work

    @staticmethod
    def _call_labels(model) -> dict:
        """'<layer name>' for a layer's first call, '<layer name>@<k>' for its k-th later call."""
        labels, seen = {}, {}
        for call in model.calls:
            name = model.layer_names[id(call.layer)]
            k = seen.get(name, 0)
            labels[call] = name if k == 0 else f"{name}@{k}"
            seen[name] = k + 1
        return labels


def _buffers_in(value) -> set:
    """Every Buffer in a nest of dicts, lists and tuples (a layer's `saved`)."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return set().union(*map(_buffers_in, value))
    return {value} if isinstance(value, Buffer) else set()


def _named(dispatch, label: str):
    """Prefix a dispatch's name with its layer ("2:linear/backward_input") for readable logs."""
    dispatch.name = f"{label}:{dispatch.name.removesuffix('.comp')}"
    return dispatch
