"""Kompute work shared by tests/test_kp_patches.py (in its own process) and kp_support/child.py (in
a fresh one): the same input and the same recorded operations on both sides. Imports kp, so the
child imports this only after setting up the validation layer."""

import kp
import numpy as np

N = 256  # elements; double.comp and triple.comp use 64-wide workgroups
A = (np.arange(N, dtype=np.float32) - 100.0) * 0.25
EMPTY = np.zeros(0, np.uint32)


def double_sequence(mgr, double_spv: bytes, **sequence_kw):
    """A recorded sequence [upload a = A, b = 2a + 1 (double.comp), download b]; returns (seq, b).
    `sequence_kw` go to mgr.sequence (e.g. total_timestamps)."""
    a = mgr.tensor_t(A.copy())
    b = mgr.tensor_t(np.zeros(N, np.float32))
    algo = mgr.algorithm([a, b], double_spv, [N // 64, 1, 1], EMPTY, EMPTY)
    seq = mgr.sequence(**sequence_kw)
    seq.record(kp.OpTensorSyncDevice([a]))
    seq.record(kp.OpAlgoDispatch(algo))
    seq.record(kp.OpTensorSyncLocal([b]))
    return seq, b


def timestamped_runs(mgr, double_spv: bytes, evals: int = 2):
    """double_sequence with 8 timestamp queries, evaluated `evals` times: ([each eval's timestamps as
    ints], a copy of b's data)."""
    seq, b = double_sequence(mgr, double_spv, total_timestamps=8)
    runs = []
    for _ in range(evals):
        seq.eval()
        runs.append([int(t) for t in seq.get_timestamps()])
    return runs, b.data().copy()


def raw_after_write(mgr, double_spv: bytes, triple_spv: bytes, barrier=None):
    """b = 2a + 1 then c = 3b in one sequence; barrier(b), if given, returns the op recorded between
    the two dispatches (to order the write of b before its read). Returns a copy of c's data."""
    a = mgr.tensor_t(A.copy())
    b = mgr.tensor_t(np.zeros(N, np.float32))
    c = mgr.tensor_t(np.zeros(N, np.float32))
    first = mgr.algorithm([a, b], double_spv, [N // 64, 1, 1], EMPTY, EMPTY)
    second = mgr.algorithm([b, c], triple_spv, [N // 64, 1, 1], EMPTY, EMPTY)
    seq = mgr.sequence()
    seq.record(kp.OpTensorSyncDevice([a]))
    seq.record(kp.OpAlgoDispatch(first))
    if barrier is not None:
        seq.record(barrier(b))
    seq.record(kp.OpAlgoDispatch(second))
    seq.record(kp.OpTensorSyncLocal([c]))
    seq.eval()
    return c.data().copy()


TEXELS = 5


def texel_inputs():
    """f: float, TEXELS whole texels and a 3-value tail no view reaches; i: int; u: uint (small
    integers, so every sum is exact)."""
    rng = np.random.default_rng(8)
    return (rng.integers(-50, 50, 4 * TEXELS + 3).astype(np.float32),
            rng.integers(-50, 50, 4 * TEXELS).astype(np.int32),
            rng.integers(0, 50, 4 * TEXELS).astype(np.uint32))
