"""The device's measured peaks, the 100% of the op table: arithmetic (chains of FMAs in registers,
bench/peak_fma.comp) and memory bandwidth (a vec4 copy, bench/copy.comp). Each grows its work
until one run takes `target_seconds`, so the fixed cost of a dispatch does not dilute it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .timing import TimedRecorder

FMA_ITERATIONS = 4096              # per invocation; far below lavapipe's 65,535 loop iterations
FMA_FLOPS_PER_ITERATION = 32       # 4 vec4 chains x 4 lanes x 2 FLOPs (shader comment)
FMA_LOCAL_SIZE = 64
COPY_MAX_BYTES = 256 << 20         # per buffer; large enough to leave every cache


@dataclass
class Peak:
    flops_per_s: float      # from the fastest FMA run: a ceiling, so a busy moment does not lower it
    bytes_per_s: float      # from the fastest copy run (bytes read + written)
    fma: dict               # invocations, FLOPs per run, Timing
    copy: dict              # bytes per buffer, bytes moved per run, Timing


def _fma_run(device, groups: int) -> tuple[TimedRecorder, int]:
    """One FMA dispatch of `groups` workgroups; returns (recorder, FLOPs)."""
    device.check_loop(FMA_ITERATIONS + 1, "bench/peak_fma.comp")
    grid = device.grid_1d(groups * FMA_LOCAL_SIZE, FMA_LOCAL_SIZE)
    invocations = grid[0] * grid[1] * FMA_LOCAL_SIZE           # a folded grid runs a few more
    seed = device.buffer("seed", (2,), staged=True)
    device.write(seed, np.array([0.999, 0.001], np.float32))   # converges to 1: no overflow, no denormals
    result = device.buffer("result", (invocations,))
    recorder = TimedRecorder(device, 1)
    recorder.dispatch(device.dispatch("bench/peak_fma.comp", {"seed": seed, "result": result}, grid,
                                      {"ITERATIONS": FMA_ITERATIONS}))
    return recorder, invocations * FMA_ITERATIONS * FMA_FLOPS_PER_ITERATION


def _copy_run(device, nbytes: int) -> tuple[TimedRecorder, int]:
    """One copy of `nbytes`; returns (recorder, bytes read + written)."""
    vec4s = nbytes // 16
    src = device.buffer("src", (vec4s * 4,))
    dst = device.buffer("dst", (vec4s * 4,))
    program = device.program("bench/copy.comp")
    recorder = TimedRecorder(device, 1)
    recorder.dispatch(device.dispatch(program, {"src": src, "dst": dst},
                                      device.grid_1d(vec4s, program.local_size[0]), {"NUMEL": vec4s}))
    return recorder, 2 * vec4s * 16


def _grown(make_run, sizes, target_seconds: float):
    """make_run(size) -> (recorder, work) for the first size whose one run takes target_seconds
    (the last size if none does)."""
    for size in sizes:
        recorder, work = make_run(size)
        once, _ = recorder.gpu_times(repeats=1, warmup=1)
        if once.median >= target_seconds:
            break
    return size, recorder, work


def measure_peak(device, repeats: int, warmup: int, target_seconds: float = 0.02) -> Peak:
    max_groups = 16 * device.properties["max_work_group_count"][0]
    groups, fma, flops = _grown(lambda g: _fma_run(device, g),
                                [16 << i for i in range(32) if 16 << i <= max_groups], target_seconds)
    fma_time, _ = fma.gpu_times(repeats, warmup)
    largest = min(COPY_MAX_BYTES, device.properties["max_storage_buffer_range"])
    nbytes, copy, moved = _grown(lambda n: _copy_run(device, n),
                                 [1 << i for i in range(20, 40) if 1 << i <= largest], target_seconds)
    copy_time, _ = copy.gpu_times(repeats, warmup)
    return Peak(flops / fma_time.min, moved / copy_time.min,
                {"workgroups": groups, "flops_per_run": flops, "timing": fma_time},
                {"buffer_bytes": nbytes, "bytes_per_run": moved, "timing": copy_time})
