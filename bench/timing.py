"""Shared by the benchmark scripts: the median wall time of a step after warm-up."""

from __future__ import annotations

import statistics
import time

from tqdm import tqdm


def median_ms(fn, steps: int, warmup: int = 5, desc: str = "") -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in tqdm(range(steps), desc=desc, leave=False):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3
