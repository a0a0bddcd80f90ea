"""Run under mpirun by tests/test_distributed.py: a BatchNorm model trained data-parallel; each rank's
running statistics come from its own shards, and predict (eval mode) uses rank 0's on every rank."""

import os
import sys

import numpy as np

import vkbackprop as vb

sys.path.insert(0, os.path.dirname(__file__))
from problem import batches, make_bn_model   # noqa: E402

trainer = vb.Trainer(make_bn_model(), vb.CrossEntropyLoss(), vb.SGD(lr=0.1), batch_size=8)
comm = trainer.comm
for x, y in batches()[:5]:
    trainer.step(x, y)
own = trainer.model.state_dict()["1.running_mean"]
owns = comm.comm.allgather(own)
assert not np.array_equal(owns[0], owns[1]), "per-rank statistics expected to differ"
predicted = trainer.predict(batches()[0][0])
everyone = comm.comm.allgather(predicted)
assert all(np.array_equal(everyone[0], p) for p in everyone), "predict differs between ranks"
state = trainer.model.state_dict()
assert np.array_equal(state["1.running_mean"], owns[0]), "eval mode should use rank 0's running statistics"
if comm.rank == 0:
    print("batchnorm ok")
