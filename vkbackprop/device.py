"""The only module that imports kp: device choice and limits, buffers, dispatches and sequences."""

from __future__ import annotations

import functools
import math
import os
import weakref
from dataclasses import dataclass, field

import kp
import numpy as np

from . import latency, validation
from .shaders import Program, compile_shader

# Prefer real GPUs; lavapipe ("Cpu") is the fallback that makes everything run anywhere.
_TYPE_RANK = {"DiscreteGpu": 0, "IntegratedGpu": 1, "VirtualGpu": 2, "Other": 3, "Cpu": 4}
_DTYPES = {"float": np.float32, "vec4": np.float32, "int": np.int32, "uint": np.uint32}


def list_devices() -> list[dict]:
    """Properties of every Vulkan physical device, in the loader's order (index = VKBACKPROP_DEVICE)."""
    validation.enable_if_requested()
    manager = kp.Manager(0)
    try:
        return [dict(p, index=i) for i, p in enumerate(manager.list_devices())]
    finally:
        manager.destroy()


def choose_device_index(devices: list[dict], override: str | None) -> int:
    if override not in (None, ""):
        try:
            index = int(override)
        except ValueError:
            raise ValueError(f"VKBACKPROP_DEVICE must be a device index, got {override!r}") from None
        if not 0 <= index < len(devices):
            raise ValueError(f"VKBACKPROP_DEVICE={index} but only devices 0..{len(devices) - 1} exist")
        return index
    return min(range(len(devices)), key=lambda i: (_TYPE_RANK.get(devices[i]["device_type"], 3), i))


@dataclass(eq=False)
class Buffer:
    """One device buffer. `staged` buffers also have host-visible staging memory (inputs, outputs,
    parameters); the rest live only in device memory (activations, gradients, optimizer state)."""
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    staged: bool
    tensor: object = field(repr=False)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def host_view(self) -> np.ndarray:
        """The staging memory as an array: write before an upload, read after a download."""
        if not self.staged:
            raise ValueError(f"buffer '{self.name}' is device-only and has no host view")
        return self.tensor.data().reshape(self.shape)


@dataclass(eq=False)
class Dispatch:
    """One recorded compute dispatch and what it reads and writes (from the shader's qualifiers)."""
    name: str
    op: object = field(repr=False)
    reads: frozenset
    writes: frozenset
    bound: dict = field(default_factory=dict, repr=False)   # binding name -> Buffer
    program: Program | None = field(default=None, repr=False)
    constants: dict = field(default_factory=dict, repr=False)   # the specialization constants set, by name


# Where Mesa 22's llvmpipe silently stops a shader invocation's loops (Device.loop_limit).
LLVMPIPE_LOOP_LIMIT = 65535


class Device:
    """A Vulkan device: the first discrete GPU, else integrated, else lavapipe; VKBACKPROP_DEVICE=<index> overrides."""

    _default: "Device | None" = None

    def __init__(self, index: int | None = None):
        validation.enable_if_requested()
        self.low_latency = latency.hold_if_requested()   # VKBACKPROP_LOW_LATENCY=1 (vkbackprop/latency.py)
        devices = list_devices()
        if not devices:
            raise RuntimeError("no Vulkan device found (install mesa-vulkan-drivers for lavapipe)")
        if index is None:
            index = choose_device_index(devices, os.environ.get("VKBACKPROP_DEVICE"))
        elif not 0 <= index < len(devices):
            raise ValueError(f"device index {index} out of range 0..{len(devices) - 1}")
        self.index = index
        self._manager = kp.Manager(index)
        self.properties = dict(self._manager.get_device_properties(), index=index)
        # buffer -> (host tensor, sequence), made on first read of a device-only buffer, dropped with it
        self._readback = weakref.WeakKeyDictionary()
        self._placeholder = None

    @functools.cached_property
    def loop_limit(self) -> int | None:
        """Most loop iterations one shader invocation may run, or None for no limit.

        Mesa 22's llvmpipe (lavapipe) counts the iterations of all loops of an invocation with one
        counter (each loop exit counts once more) and silently stops looping at 65,535, giving wrong
        results without an error; layers check their worst case against this when planned. Newer
        llvmpipes run loops to the end: on llvmpipe one probe dispatch tells which this is."""
        if not self.name.startswith("llvmpipe"):
            return None
        return LLVMPIPE_LOOP_LIMIT if self._loop_stops_at(LLVMPIPE_LOOP_LIMIT) else None

    def _loop_stops_at(self, limit: int) -> bool:
        from .schedule import Recorder   # schedule builds on this module
        ones = self.buffer("loop probe ones", (2,), np.uint32, staged=True)
        count = self.buffer("loop probe count", (1,), np.uint32, staged=True)
        ones.host_view()[...] = 1
        probe = Recorder(self)
        probe.upload([ones])
        probe.dispatch(self.dispatch("device/loop_probe.comp", {"ones": ones, "count": count}, (1, 1, 1),
                                     {"ITERATIONS": limit + 10}))
        probe.download([count])
        probe.sequence.eval()
        return int(count.host_view()[0]) == limit

    def check_loop(self, iterations: int, what: str) -> None:
        limit = self.loop_limit
        if limit is not None and iterations > limit:
            raise ValueError(f"{what} needs {iterations} loop iterations per shader invocation; "
                             f"{self.name} stops loops after {limit}")

    @property
    def prefers_texel_reads(self) -> bool:
        """Whether shaders with a texel variant (shaders/common/vec4_input.glsl) should read their
        vec4 inputs as uniform texel buffers: on CPU devices, where llvmpipe loops over the lanes
        for each storage-buffer load (the vec4 GEMM at 1024^3: 49 -> 64-66 GFLOP/s through
        texelFetch). GPUs keep storage buffers. VKBACKPROP_TEXEL_READS=0/1 overrides."""
        override = os.environ.get("VKBACKPROP_TEXEL_READS")
        if override not in (None, "", "0", "1"):
            raise ValueError(f"VKBACKPROP_TEXEL_READS must be 0 or 1, got {override!r}")
        if override:
            return override == "1"
        return self.properties["device_type"] == "Cpu"

    @property
    def prefers_invocation_per_row(self) -> bool:
        """Whether a reduction over each row of a matrix (LayerNorm's passes) should run one
        invocation per row on quads, rather than a workgroup per row whose lanes read neighbouring
        values and add them up in a shared-memory tree: on CPU devices, where each tree level's
        barrier and each load instruction cost more than a sequential sum (LayerNorm 1024x1024 on
        lavapipe: forward 7.2 -> 1.2 ms, dx 7.8 -> 1.4). GPUs keep the workgroups."""
        return self.properties["device_type"] == "Cpu"

    def texel_fits(self, buffer: "Buffer") -> bool:
        """Whether a float/int buffer can be bound as a texel buffer of vec4 quads (at least one
        whole quad, at most maxTexelBufferElements of them)."""
        return 1 <= buffer.size // 4 <= self.properties["max_texel_buffer_elements"]

    @property
    def quads_per_invocation(self) -> int:
        """Quads each invocation of a vec4 elementwise or update shader loops over (the grid's size;
        any is correct). More spread an invocation's fixed cost (index, scalar loads); on CPU devices
        fewer workgroups also save lavapipe's ~1 us per workgroup (the MLP's foreach SGD: 0.31 ms
        with 8, 0.23 with 32, 0.25 with 128). GPUs keep 8 (4-8 ran ~25% faster than 1 on lavapipe;
        a GPU wants many invocations in flight)."""
        return 32 if self.properties["device_type"] == "Cpu" else 8

    @property
    def samples_per_step_invocation(self) -> int:
        """Samples an invocation of a recurrent layer's time-step shaders computes one hidden unit of
        where its hidden size is a multiple of 4 (shaders/rnn/sequence.glsl; any count is correct,
        and gives the same bits): on CPU devices 4, each weight quad loaded once for the four (the LSTM benchmark's 64 forward steps at
        batch 64: 36-40 -> 29-31 ms; at batch 16, a quarter of the workgroups, each ~1 us of
        lavapipe's). GPUs keep 1: a GPU wants many invocations in flight."""
        return 4 if self.properties["device_type"] == "Cpu" else 1

    def quad_view(self, buffer: "Buffer") -> "Buffer":
        """What to bind to a read-only vec4 view of `buffer` (common/vec4_input.glsl): the buffer,
        or the placeholder when it holds no whole quad. Shaders never read such a view (a 1-3 value
        buffer is all tail), and a texel binding needs at least one texel."""
        return buffer if buffer.size >= 4 else self.placeholder

    def read_defines(self, buffers) -> dict:
        """The -D define choosing how a shader with common/vec4_input.glsl reads its vec4 inputs in
        a dispatch over `buffers`: texel buffers where the device prefers them and every buffer fits
        one, else storage buffers."""
        texel = self.prefers_texel_reads and all(self.texel_fits(b) for b in buffers)
        return {"TEXEL_READS": int(texel)}

    @classmethod
    def default(cls) -> "Device":
        """One shared device per process, created on first use."""
        if cls._default is None:
            cls._default = cls()
        return cls._default

    @property
    def name(self) -> str:
        return self.properties["device_name"]

    def __repr__(self) -> str:
        return f"Device({self.index}: {self.name}, {self.properties['device_type']})"

    # --- memory ---------------------------------------------------------------------------
    def buffer(self, name: str, shape, dtype=np.float32, staged: bool = False) -> Buffer:
        shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        dtype = np.dtype(dtype)
        size = max(1, math.prod(shape))
        limit = self.properties["max_storage_buffer_range"]
        if size * dtype.itemsize > limit:
            raise ValueError(f"buffer '{name}' {shape} needs {size * dtype.itemsize} bytes; "
                             f"the device's storage buffer limit is {limit}")
        kind = kp.TensorTypes.device if staged else kp.TensorTypes.storage
        tensor = self._manager.tensor_t(np.zeros(size, dtype=dtype), kind)
        return Buffer(name, shape, dtype, staged, tensor)

    @property
    def placeholder(self) -> Buffer:
        """A 4-float buffer bound where a shader's optional input is switched off (never read); one
        quad, so it may stand in for a texel binding too."""
        if self._placeholder is None:
            self._placeholder = self.buffer("placeholder", (4,))
        return self._placeholder

    def write(self, buffer: Buffer, values: np.ndarray) -> None:
        """Copy values into a staged buffer and on to the device (blocking)."""
        buffer.host_view()[...] = np.asarray(values, dtype=buffer.dtype).reshape(buffer.shape)
        self._manager.sequence().eval(kp.OpTensorSyncDevice([buffer.tensor]))

    def read(self, buffer: Buffer) -> np.ndarray:
        """A host copy of a buffer's device contents (blocking)."""
        if buffer.staged:
            self._manager.sequence().eval(kp.OpTensorSyncLocal([buffer.tensor]))
            return buffer.host_view().copy()
        if buffer not in self._readback:
            host = self._manager.tensor_t(np.zeros(max(1, buffer.size), buffer.dtype), kp.TensorTypes.host)
            seq = self._manager.sequence()
            seq.record(kp.OpTensorCopy([buffer.tensor, host]))
            seq.record(kp.OpMemoryBarrier([host], int(kp.AccessFlagBits.transfer_write),
                                          int(kp.AccessFlagBits.host_read),
                                          int(kp.PipelineStageFlagBits.transfer),
                                          int(kp.PipelineStageFlagBits.host)))
            self._readback[buffer] = (host, seq)
        host, seq = self._readback[buffer]
        seq.eval()
        return host.data()[: buffer.size].reshape(buffer.shape).copy()

    # --- work -----------------------------------------------------------------------------
    def program(self, path: str, defines: dict | None = None) -> Program:
        return compile_shader(path, defines)

    def dispatch(self, program: Program | str, buffers: dict[str, Buffer], groups,
                 constants: dict | None = None, name: str | None = None) -> Dispatch:
        """Bind buffers and specialization constants to a program by name (checked), ready to record."""
        if isinstance(program, str):
            program = self.program(program)
        expected = [b.name for b in program.bindings]
        if set(buffers) != set(expected):
            missing = sorted(set(expected) - set(buffers))
            extra = sorted(set(buffers) - set(expected))
            raise ValueError(f"{program.path}: bindings {expected}; missing {missing}, unexpected {extra}")
        for b in program.bindings:
            got = buffers[b.name].dtype
            if got != _DTYPES[b.element_type]:
                raise ValueError(f"{program.path}: binding '{b.name}' is {b.element_type}[] but buffer "
                                 f"'{buffers[b.name].name}' is {got}")
            if b.writes and buffers[b.name] is self._placeholder:
                raise ValueError(f"{program.path}: binding '{b.name}' is writable; the placeholder stands in "
                                 "for unused inputs only (a write would order every dispatch binding it)")
            if b.texel and not self.texel_fits(buffers[b.name]):
                raise ValueError(f"{program.path}: texel binding '{b.name}' needs 1..."
                                 f"{self.properties['max_texel_buffer_elements']} vec4 quads but buffer "
                                 f"'{buffers[b.name].name}' holds {buffers[b.name].size} values")
        groups = tuple(int(g) for g in groups) + (1,) * (3 - len(groups))
        limits = self.properties["max_work_group_count"]
        if any(g < 1 or g > lim for g, lim in zip(groups, limits)):
            raise ValueError(f"{program.path}: workgroup count {groups} outside 1..{limits}")
        algorithm = self._manager.algorithm(
            [buffers[n].tensor for n in expected], program.spirv, list(groups),
            _pack_constants(program, constants or {}), np.zeros(0, dtype=np.uint32))
        reads = frozenset(buffers[b.name] for b in program.bindings if b.reads)
        writes = frozenset(buffers[b.name] for b in program.bindings if b.writes)
        return Dispatch(name or program.path, kp.OpAlgoDispatch(algorithm), reads, writes, dict(buffers), program,
                        dict(constants or {}))

    def sequence(self, timestamps: int = 0) -> "Sequence":
        """A new sequence. `timestamps` > 0 latches a GPU timestamp after each recorded command, for
        at most that many commands; `Sequence.op_seconds()` turns them into per-command durations."""
        if timestamps and not self.properties["timestamps_supported"]:
            raise ValueError(f"{self.name} does not support timestamps in compute queues")
        seq = self._manager.sequence(total_timestamps=int(timestamps))
        return Sequence(seq, int(timestamps), self.properties["timestamp_period"])

    @staticmethod
    def grid_1d(items: int, local_x: int, max_x: int = 65535) -> tuple[int, int, int]:
        """Workgroups for `items` invocations; counts above 65,535 fold into y (shaders flatten x,y)."""
        groups = max(1, -(-items // local_x))
        return (min(groups, max_x), -(-groups // max_x), 1)


def _pack_constants(program: Program, values: dict) -> np.ndarray:
    """Specialization constants by name -> one uint32 array ordered by constant_id (raw 4-byte values)."""
    unknown = set(values) - {c.name for c in program.constants}
    if unknown:
        raise ValueError(f"{program.path}: unknown specialization constants {sorted(unknown)}; "
                         f"declared: {[c.name for c in program.constants]}")
    words = np.zeros(len(program.constants), dtype=np.uint32)
    for i, c in enumerate(program.constants):
        value = values.get(c.name, c.default)
        if c.glsl_type == "float":
            words[i] = np.float32(float(value)).view(np.uint32)
        elif c.glsl_type == "bool":
            words[i] = 1 if (value is True or str(value).lower() in ("true", "1")) else 0
        elif c.glsl_type == "int":
            words[i] = np.int32(int(value)).view(np.uint32)
        else:
            words[i] = np.uint32(int(value))
    return words


class Sequence:
    """A kp sequence recorded once and submitted many times.

    With timestamps (`Device.sequence(timestamps=n)`), kp writes timestamp 0 when recording starts
    and timestamp i right after the i-th recorded command (upload, dispatch, barrier or download),
    each eval overwriting the last; so command i ran between timestamps i and i + 1."""

    def __init__(self, seq, timestamps: int = 0, timestamp_period_ns: float = 1.0):
        self._seq = seq
        self._capacity = timestamps
        self._period_ns = timestamp_period_ns
        self.recorded = 0   # commands recorded so far

    def _record(self, op) -> None:
        # kp would write a timestamp past the end of its query pool (undefined) rather than fail.
        if self._capacity and self.recorded >= self._capacity:
            raise ValueError(f"this sequence has timestamps for {self._capacity} commands; "
                             "make it with a larger Device.sequence(timestamps=...)")
        self._seq.record(op)
        self.recorded += 1

    def upload(self, buffers: list[Buffer]) -> None:
        self._record(kp.OpTensorSyncDevice([b.tensor for b in buffers]))

    def download(self, buffers: list[Buffer]) -> None:
        # OpTensorSyncLocal brings its own shader-write -> transfer-read and transfer -> host barriers.
        self._record(kp.OpTensorSyncLocal([b.tensor for b in buffers]))

    def dispatch(self, dispatch: Dispatch) -> None:
        self._record(dispatch.op)

    def barrier(self, buffers: list[Buffer]) -> None:
        """Compute -> compute: earlier shader reads/writes of these buffers finish before later ones."""
        both = int(kp.AccessFlagBits.shader_read) | int(kp.AccessFlagBits.shader_write)
        compute = int(kp.PipelineStageFlagBits.compute_shader)
        self._record(kp.OpMemoryBarrier([b.tensor for b in buffers], both, both, compute, compute))

    def op_seconds(self) -> list[float]:
        """Seconds each recorded command took in the last eval, in recording order (timestamp
        ticks times the device's timestamp period)."""
        if not self._capacity:
            raise ValueError("this sequence has no timestamps: make it with Device.sequence(timestamps=n)")
        ticks = [int(t) for t in self._seq.get_timestamps()]
        return [(b - a) * self._period_ns * 1e-9 for a, b in zip(ticks, ticks[1:])]

    def eval(self) -> None:
        self._seq.eval()

    def eval_async(self) -> None:
        self._seq.eval_async()

    def eval_await(self) -> None:
        self._seq.eval_await()

    def is_running(self) -> bool:
        return self._seq.is_running()
