"""`vkbackprop bench`: each layer's shaders alone on chosen shapes (GPU timestamps, against the
device's measured FMA and copy peaks, and the same math in NumPy and PyTorch) and whole training
steps against PyTorch.

Modules, one job each: `timing` (timestamps, wall time, min/median/max), `isolated` (one layer
call's buffers and its recorded forward or backward), `ops` (what is benchmarked: shapes, FLOPs,
bytes, host math), `layer_bench` (one op measured three ways), `peak` (microbenchmarks), `models`
and `steps` (training-step suite and sweeps), `report` (table, JSON schema, plots), `cli`.
"""
