"""The scheduler inserts a barrier exactly where one dispatch reads or overwrites what an earlier
one touched, and nowhere else."""

from types import SimpleNamespace

import pytest

import vkbackprop as vb
from vkbackprop.schedule import HazardTracker
from oracles import check_barriers_exact


def test_tracker_hazard_kinds():
    t = HazardTracker()
    t.accessed(reads={"a"}, writes={"b"})
    assert t.hazards(reads={"b"}, writes=set()) == {"b"}            # read after write
    assert t.hazards(reads=set(), writes={"b"}) == {"b"}            # write after write
    assert t.hazards(reads=set(), writes={"a"}) == {"a"}            # write after read
    assert t.hazards(reads={"a"}, writes={"c"}) == set()            # read after read, fresh write
    t.ordered({"a", "b"})
    assert t.hazards(reads={"b"}, writes={"a"}) == set()


def test_any_barrier_settles_earlier_reads_but_only_its_own_buffers_writes():
    """A compute -> compute barrier's execution dependency orders every earlier dispatch before every
    later one (enough for a write after a read); a write needs a memory dependency on its buffer."""
    t = HazardTracker()
    t.accessed(reads={"a"}, writes={"b", "c"})
    assert t.hazards(reads=set(), writes={"a"}) == {"a"}
    t.ordered({"b"})
    assert t.hazards(reads=set(), writes={"a"}) == set()            # read, then a barrier, then the write
    assert t.hazards(reads={"c"}, writes=set()) == {"c"}            # c's write is still not visible


def test_mlp_step_has_exactly_the_needed_barriers(device):
    model = vb.Sequential(vb.Linear(5, 7), vb.ReLU(), vb.Linear(7, 3), vb.ReLU(), vb.Linear(3, 2))
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=0.1), batch_size=4, device=device)
    log = trainer.plan.train.log
    check_barriers_exact(log)
    check_barriers_exact(trainer.plan.predict.log)

    # A layer's dW, db and dX only read dy, x and W: they run back to back with no barrier.
    kinds = [(k, w.name if k == "dispatch" else None) for k, w in log]
    i = kinds.index(("dispatch", "4:linear/backward_weight"))
    assert kinds[i + 1:i + 3] == [("dispatch", "4:linear/backward_bias"), ("dispatch", "4:linear/backward_input")]
    # Not a blanket barrier before every dispatch.
    n_dispatch = sum(k == "dispatch" for k, _ in log)
    n_barrier = sum(k == "barrier" for k, _ in log)
    assert n_barrier < n_dispatch - 1
    # The step uploads the batch first and downloads only the loss and the non-finite guard.
    assert log[0][0] == "upload" and [b.name for b in log[0][1]] == ["input", "target", "hyper", "step"]
    assert log[-1][0] == "download" and [b.name for b in log[-1][1]] == ["loss", "guard"]


class Buf:
    def __init__(self, name):
        self.name = name


def test_oracle_detects_a_missing_barrier():
    """Negative control for check_barriers_exact."""
    a, b, c = (Buf(n) for n in "abc")
    first = SimpleNamespace(name="first", reads=frozenset({a}), writes=frozenset({b}))
    second = SimpleNamespace(name="second", reads=frozenset({b}), writes=frozenset({c}))
    with pytest.raises(AssertionError, match="no barrier on b"):
        check_barriers_exact([("dispatch", first), ("dispatch", second)])
    with pytest.raises(AssertionError, match="barrier on a"):     # a useless barrier
        check_barriers_exact([("dispatch", first), ("barrier", (a, b)), ("dispatch", second)])
    # third overwrites a, which first only read: some barrier between them is needed, on any buffer.
    third = SimpleNamespace(name="third", reads=frozenset(), writes=frozenset({a}))
    with pytest.raises(AssertionError, match="overwrites a"):
        check_barriers_exact([("dispatch", first), ("dispatch", third)])
    check_barriers_exact([("dispatch", first), ("barrier", (b,)), ("dispatch", second), ("dispatch", third)])
    with pytest.raises(AssertionError, match="barrier on a before third"):   # the barrier on b ordered it
        check_barriers_exact([("dispatch", first), ("barrier", (b,)), ("dispatch", second),
                              ("barrier", (a,)), ("dispatch", third)])


def test_step_is_recorded_once(device, rng):
    """Steps and learning-rate changes reuse the recorded sequence (no re-recording)."""
    model = vb.Sequential(vb.Linear(3, 4), vb.ReLU(), vb.Linear(4, 2))
    opt = vb.SGD(lr=0.1)
    trainer = vb.Trainer(model, vb.MSELoss(), opt, batch_size=2, device=device)
    sequence, log_len = trainer.plan.train.sequence, len(trainer.plan.train.log)
    for lr in (0.1, 0.01):
        opt.lr = lr
        trainer.step(rng.standard_normal((2, 3)), rng.standard_normal((2, 2)))
    assert trainer.plan.train.sequence is sequence and len(trainer.plan.train.log) == log_len
