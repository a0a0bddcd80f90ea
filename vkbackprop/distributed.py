"""Data-parallel training over MPI (mpi4py): `vb.Trainer(..., distributed=True)` under `mpirun`.

Each rank drives one Vulkan device (its local rank picks among the GPUs; lavapipe when there are
none), takes its shard of every global batch (rows rank*b/N .. (rank+1)*b/N of the batch_size rows
every rank is given), runs forward and backward on its device, and the gradients are averaged over
the ranks with MPI; then every rank applies the same optimizer update, so the parameters stay
identical (bit for bit: every rank receives the same sums).

The step is recorded as several sequences instead of one: the backward pass is cut after the
dispatch that finishes each *bucket* of parameter gradients (about BUCKET_FLOATS floats, in the
order backward finishes them); each segment ends by packing its bucket into one flat staged buffer
and downloading it. The host starts a non-blocking all-reduce of a bucket as soon as its segment is
done and meanwhile submits the next segment, so communication overlaps the rest of the backward
pass. A last sequence uploads the averaged buckets and losses, unpacks them into the gradient
buffers and runs the gradient guard and the optimizer updates (so clipping and the NaN/Inf guard see
the averaged gradients, identically on every rank).

Batch norm follows PyTorch DDP's default: statistics of each rank's shard (no SyncBatchNorm); the
running statistics are those of rank 0 at checkpoints (rank 0 writes them).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from .optim.base import copy
from .plan import StepPlan
from .schedule import Recorder

BUCKET_FLOATS = 1 << 20          # ~4 MB per message, like DDP's bucket_cap_mb order of magnitude
TIMEOUT_ENV = "VKBACKPROP_DIST_TIMEOUT"   # seconds a rank waits for the others (default 300)


def mpi_world_size() -> int:
    """The MPI world size from the launcher's environment (1 outside mpirun), without importing MPI."""
    for key in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 1


class Communicator:
    """The ranks of the job: MPI's world communicator with the operations training needs, each
    with a timeout so a dead or hung rank stops the others with a clear error instead of a hang."""

    def __init__(self):
        try:
            from mpi4py import MPI
        except ImportError as e:   # pragma: no cover - mpi4py is installed by scripts/setup.sh
            raise ValueError(f"distributed training needs mpi4py (and an MPI library): {e}") from None
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self.timeout = float(os.environ.get(TIMEOUT_ENV, "300"))
        _abort_on_uncaught_exceptions(self.comm)

    def wait(self, request, what: str):
        """Wait for a non-blocking operation, at most `timeout` seconds."""
        deadline = time.monotonic() + self.timeout
        while not request.Test():
            if time.monotonic() > deadline:
                raise RuntimeError(f"rank {self.rank}: {what} did not complete within {self.timeout:g} s "
                                   f"({TIMEOUT_ENV}): another rank has died or hangs")
            time.sleep(1e-4)

    def start_sum(self, array: np.ndarray):
        """Start summing `array` over the ranks; returns (request, result array)."""
        out = np.empty_like(array)
        return self.comm.Iallreduce(array, out, op=self.MPI.SUM), out

    def sum(self, array: np.ndarray, what: str) -> np.ndarray:
        request, out = self.start_sum(np.ascontiguousarray(array))
        self.wait(request, what)
        return out

    def gather_rows(self, rows: np.ndarray, what: str) -> np.ndarray:
        """Every rank's rows, concatenated in rank order, on every rank."""
        counts = self.sum(np.eye(self.size, dtype=np.int64)[self.rank] * rows.size, f"{what} (sizes)")
        out = np.empty(int(counts.sum()), rows.dtype)
        request = self.comm.Iallgatherv(np.ascontiguousarray(rows).reshape(-1), [out, counts])
        self.wait(request, what)
        return out.reshape(-1, *rows.shape[1:])

    def broadcast(self, array: np.ndarray, what: str) -> np.ndarray:
        """Rank 0's `array` (same shape and dtype on every rank), on every rank."""
        out = np.ascontiguousarray(array).copy()
        self.wait(self.comm.Ibcast(out, root=0), what)
        return out

    def barrier(self, what: str) -> None:
        self.wait(self.comm.Ibarrier(), what)


def _abort_on_uncaught_exceptions(comm) -> None:
    """An exception nobody catches on one rank would leave the others waiting in a collective (and
    this rank in MPI_Finalize at exit): print it, then abort the whole job, as `python -m mpi4py` does."""
    if getattr(sys.excepthook, "vkbackprop_aborts", False):
        return
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        sys.stderr.flush()
        comm.Abort(1)
    hook.vkbackprop_aborts = True
    sys.excepthook = hook


def choose_device_index(devices: list[dict], local_rank: int, local_size: int) -> int | None:
    """The device of a rank: the local_rank-th GPU, or None (the default device: lavapipe) when the
    machine has no GPU. More ranks on a machine than GPUs is refused."""
    gpus = [d["index"] for d in devices if d["device_type"] != "Cpu"]
    if not gpus:
        return None
    if local_size > len(gpus):
        raise ValueError(f"distributed: {local_size} ranks on this machine but only {len(gpus)} GPU(s); "
                         "run at most one rank per GPU")
    return gpus[local_rank]


class DataParallelPlan(StepPlan):
    """A StepPlan whose training step is recorded as backward segments ending in gradient buckets,
    plus an update sequence (see the module docstring). `run_step(comm)` runs it."""

    squares_from_writers = False   # the norm is of the averaged gradients, summed after the all-reduce

    def _record_train(self):
        device = self.device
        buckets = self._buckets()
        self.bucket_params = [[name for name, _ in b] for b in buckets]
        self.flat = [device.buffer(f"bucket{i}", (sum(self.param_grads[n].size for n in names),), staged=True)
                     for i, names in enumerate(self.bucket_params)]
        self.segments = []
        done = -1
        for i, bucket in enumerate(buckets):
            end = max(last for _, last in bucket)
            rec = Recorder(device)
            if i == 0:
                rec.upload(self.inputs + self.targets + [self.hyper, self.step])
                for d in self.forward:
                    rec.dispatch(d)
            self._continue(rec, self.backward[done + 1:end + 1])
            offset = 0
            for name in self.bucket_params[i]:
                grad = self.param_grads[name]
                rec.dispatch(copy(device, grad, self.flat[i], dst_offset=offset, numel=grad.size))
                offset += grad.size
            rec.download([self.flat[i]] + (self.losses if i == len(buckets) - 1 else []))
            self.segments.append(rec)
            done = end
        if done + 1 < len(self.backward):   # backward work after the last gradient (none in practice)
            raise AssertionError("data-parallel plan: backward dispatches after the last parameter gradient")

        update = Recorder(device)
        update.upload(self.flat + self.losses)
        offsets = {}
        for i, names in enumerate(self.bucket_params):
            offset = 0
            for name in names:
                offsets[name] = (i, offset)
                offset += self.param_grads[name].size
        for name, grad in self.param_grads.items():
            i, offset = offsets[name]
            update.dispatch(copy(device, self.flat[i], grad, src_offset=offset, numel=grad.size))
        for d in self.stats + [self.guard_dispatch] + self.updates:
            update.dispatch(d)
        update.download([self.guard])
        self.update = update
        return self.segments[0]   # `train` names the first segment (its log starts the step)

    def recorders(self) -> list:
        return self.segments + [self.update, self.predict, self.init]

    def _buckets(self) -> list:
        """Parameters in the order backward finishes their gradients, grouped into buckets of about
        BUCKET_FLOATS: [[(name, index of the last backward dispatch writing its gradient)], ...]."""
        last = {}
        for index, d in enumerate(self.backward):
            for name, grad in self.param_grads.items():
                if grad in d.writes:
                    last[name] = index
        order = sorted(self.param_grads, key=lambda n: (last[n], n))
        buckets, current, size = [], [], 0
        for name in order:
            current.append((name, last[name]))
            size += self.param_grads[name].size
            if size >= BUCKET_FLOATS:
                buckets.append(current)
                current, size = [], 0
        if current:
            buckets.append(current)
        return buckets

    @staticmethod
    def _continue(rec: Recorder, dispatches: list) -> None:
        """Record dispatches that follow an earlier segment's (submitted and finished before): a
        leading barrier on what they touch orders them after it, as one sequence's barriers would."""
        touched = sorted({b for d in dispatches for b in d.reads | d.writes}, key=lambda b: b.name)
        if touched:
            rec.barrier(touched)
        for d in dispatches:
            rec.dispatch(d)

    def run_step(self, comm: Communicator, step: int) -> float:
        """The submitted-and-finished first segment is awaited here; then the other segments, the
        bucket all-reduces (overlapping), the loss average and the update. Returns the averaged loss."""
        requests = []
        for i, rec in enumerate(self.segments):
            if i > 0:
                rec.sequence.eval_async()
            rec.sequence.eval_await()
            requests.append(comm.start_sum(self.flat[i].host_view()))
        waiting = time.perf_counter()
        losses = comm.sum(np.concatenate([b.host_view() for b in self.losses]), f"the loss all-reduce of step {step}")
        for i, (request, total) in enumerate(requests):
            comm.wait(request, f"the gradient all-reduce of bucket {i} in step {step}")
            self.flat[i].host_view()[...] = total / comm.size
        # What the step spent waiting for the other ranks once its own backward was done (communication
        # not hidden behind backward, plus load imbalance), for the benchmark.
        self.last_wait_seconds = time.perf_counter() - waiting
        for buf, value in zip(self.losses, losses / comm.size):
            buf.host_view()[...] = value
        self.update.sequence.eval()
        return float(sum(float(b.host_view()[0]) for b in self.losses))
