"""The validation harness catches what it must: the training step recorded by the scheduler is
clean under synchronization validation, and the same dispatches without its barriers are not."""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, sys
import numpy as np
from vkbackprop import validation
validation.enable()
import vkbackprop as vb
from vkbackprop.device import Device

device = Device()
model = vb.Sequential(vb.Linear(6, 5), vb.ReLU(), vb.Linear(5, 3))
trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=0.1), batch_size=4, device=device)
rng = np.random.default_rng(0)
x, y = rng.standard_normal((4, 6)), rng.integers(0, 3, 4)
if sys.argv[1] == "without-barriers":
    # The step's own commands, recorded again with every barrier left out.
    seq = device.sequence()
    for kind, what in trainer.plan.train.log:
        if kind == "upload": seq.upload(list(what))
        elif kind == "dispatch": seq.dispatch(what)
        elif kind == "download": seq.download(list(what))
    trainer.plan.train.sequence = seq
trainer.step(x, y)
trainer.step(x, y)
print(json.dumps(validation.new_messages()))
"""


def run(mode: str) -> list:
    env = dict(os.environ, VKBACKPROP_VALIDATE="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_recorded_step_is_clean_and_missing_barriers_are_caught():
    assert run("with-barriers") == []
    errors = run("without-barriers")
    assert any("SYNC-HAZARD-READ-AFTER-WRITE" in e for e in errors), errors[:2]


WAR_SCRIPT = r"""
import json, sys
from vkbackprop import validation
validation.enable()
from vkbackprop.device import Device
from vkbackprop.layers.activation import elementwise

device = Device()
a, b, c = (device.buffer(name, (64,)) for name in "abc")
reads_a = elementwise(device, "relu/forward.comp", {"x": a, "y": b}, 64)      # reads a, writes b
overwrites_a = elementwise(device, "relu/forward.comp", {"x": c, "y": a}, 64)  # reads c, writes a
seq = device.sequence()
seq.dispatch(reads_a)
if sys.argv[1] == "barrier-on-b":
    seq.barrier([b])
seq.dispatch(overwrites_a)
seq.eval()
print(json.dumps(validation.new_messages()))
"""


def test_a_barrier_on_another_buffer_orders_a_write_after_a_read():
    """The hazard tracker's premise (schedule.py), checked by synchronization validation: a write after
    a read needs only an execution dependency, which a compute -> compute barrier on any buffer gives."""
    env = dict(os.environ, VKBACKPROP_VALIDATE="1")

    def messages(mode):
        proc = subprocess.run([sys.executable, "-c", WAR_SCRIPT, mode], capture_output=True, text=True, env=env,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])
    unordered = messages("no-barrier")
    assert any("SYNC-HAZARD-WRITE-AFTER-READ" in m for m in unordered), unordered[:2]
    assert messages("barrier-on-b") == []
