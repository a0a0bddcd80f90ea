"""Low-latency mode: ask Linux to keep the CPUs out of idle states that are slow to wake (a PM QoS
request through /dev/cpu_dma_latency) while this process holds it. Opt-in: VKBACKPROP_LOW_LATENCY=1
(`Device()` then holds it until the process exits) or `with WakeLatencyRequest(0): ...`.

Why: every submitted sequence hands work from thread to thread (on lavapipe: to Mesa's submit
thread, to llvmpipe's compute threads once per dispatch, back through the fence), and a hand-off to
a thread whose CPU has gone idle waits for that CPU to wake. On a VM whose idle virtual CPUs halt at
once, each such wake-up is a VM exit and an interrupt: measured on a 2-core KVM guest (cpuidle
`haltpoll` with guest_halt_poll_ns 0), a request of 0 us took one submit's fixed cost from 101-139
to 26-32 us and the MLP step from 4.2-4.5 to 3.5-4.3 ms (docs/benchmarks.md). The price: idle CPUs
poll instead of sleeping (power; on a VM the host sees them busy) for as long as the request is
held, so it is never on by default. The kernel drops the request when its file is closed, at the
latest when the process exits: nothing outlives the process. Writing the file needs permission
(root by default); without it a warning says so and nothing changes.
"""

from __future__ import annotations

import os
import struct
import warnings

PATH = "/dev/cpu_dma_latency"
ENV = "VKBACKPROP_LOW_LATENCY"


class WakeLatencyRequest:
    """A PM QoS request that no CPU idle state take longer than `microseconds` to wake from
    (0: CPUs poll when idle), held while acquired (`with`, or acquire()/release())."""

    def __init__(self, microseconds: int = 0, path: str = PATH):
        if isinstance(microseconds, bool) or not isinstance(microseconds, int) or not 0 <= microseconds < 2**31:
            raise ValueError(f"WakeLatencyRequest: microseconds must be an int in 0..2^31-1, got {microseconds!r}")
        self.microseconds, self.path = microseconds, path
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Hold the request; False (with a warning) where the file cannot be written."""
        if self._fd is None:
            try:
                fd = os.open(self.path, os.O_WRONLY)
            except OSError as e:
                warnings.warn(f"low-latency mode unavailable: cannot open {self.path} for writing ({e.strerror}); "
                              "CPUs keep their idle policy", RuntimeWarning, stacklevel=2)
                return False
            try:
                os.write(fd, struct.pack("i", self.microseconds))   # the kernel takes a native int32
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)   # the kernel removes the request with its file
            self._fd = None

    def __enter__(self) -> "WakeLatencyRequest":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def current_target_us(path: str = PATH) -> int:
    """The kernel's wake-latency target now: the smallest of all held requests (2,000,000,000 when
    none), in microseconds."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return struct.unpack("i", os.read(fd, 4))[0]
    finally:
        os.close(fd)


_process_request = WakeLatencyRequest(0)


def hold_if_requested() -> bool:
    """With VKBACKPROP_LOW_LATENCY=1, hold a 0 us request for the rest of the process (once);
    returns whether it is held."""
    value = os.environ.get(ENV, "")
    if value not in ("", "0", "1"):
        raise ValueError(f"{ENV} must be 0 or 1, got {value!r}")
    if value == "1":
        _process_request.acquire()
    return _process_request.held
