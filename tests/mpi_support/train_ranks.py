"""Run under mpirun by tests/test_distributed.py: train 20 steps data-parallel, check after every
step that all ranks hold bit-identical parameters, and write rank 0's results to argv[1] (npz).
argv[2]: optimizer ('sgd' or 'adam'); argv[3]: a scenario ('ok', 'die', 'hang', 'odd-batch')."""

import hashlib
import os
import sys
import time

import numpy as np

import vkbackprop as vb
from vkbackprop import distributed, validation

out, optimizer, scenario = sys.argv[1], sys.argv[2], sys.argv[3]
distributed.BUCKET_FLOATS = 40       # several buckets: the overlapped path, not one big message
sys.path.insert(0, os.path.dirname(__file__))
from problem import STEPS, batches, make_model, make_optimizer   # noqa: E402

trainer = vb.Trainer(make_model(), vb.CrossEntropyLoss(), make_optimizer(optimizer),
                     batch_size=7 if scenario == "odd-batch" else 8)
comm = trainer.comm
losses = []
for k, (x, y) in enumerate(batches()):
    if k == 3 and comm.rank == 1 and scenario == "die":
        os._exit(3)
    if k == 3 and comm.rank == 1 and scenario == "hang":
        time.sleep(600)
    losses.append(trainer.step(x, y))
    state = trainer.model.state_dict()
    digest = hashlib.sha256(b"".join(v.tobytes() for v in state.values())).digest()
    digests = comm.comm.allgather(digest)
    assert len(set(digests)) == 1, f"step {k}: ranks hold different parameters"
errors = validation.new_messages()
assert not errors, f"rank {comm.rank}: {len(errors)} validation errors, first: {errors[0][:1500]}"
predicted = trainer.predict(batches()[0][0])
if comm.rank == 0:
    np.savez(out, losses=np.array(losses), predicted=predicted, segments=len(trainer.plan.segments),
             **{f"param/{k}": v for k, v in trainer.model.state_dict().items()})
