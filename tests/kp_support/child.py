"""Child process for tests/test_kp_patches.py (run as `python child.py SCENARIO`).

Some checks need a fresh process: the validation layer must be configured before the first Vulkan
instance exists, and the fence counter is an LD_PRELOAD shim. The parent passes the compiled SPIR-V
paths in $KP_TEST_SPIRV (JSON name -> path) and gets one JSON object back on the last stdout line.

With VKBACKPROP_VALIDATE=1 the child enables the Khronos validation layer (sync validation on) before
creating kp.Manager, reports the layer's errors for the scenario as "messages", then runs a known
read-after-write hazard as a canary and reports its errors as "canary_messages": a non-empty canary
proves the layer was really active, so an empty "messages" is not vacuous.
"""

import ctypes
import json
import os
import sys

import numpy as np

VALIDATE = os.environ.get("VKBACKPROP_VALIDATE", "") not in ("", "0")
if VALIDATE:
    # Before kp.Manager: the layer is picked up when the instance is created.
    from vkbackprop import validation

    validation.enable(os.environ["KP_TEST_LOG_DIR"])

import kp  # noqa: E402

SPIRV = {name: open(path, "rb").read() for name, path in json.loads(os.environ["KP_TEST_SPIRV"]).items()}
N = 256  # elements; double/triple use 64-wide workgroups
A = (np.arange(N, dtype=np.float32) - 100.0) * 0.25


def barrier(tensors, src_access, dst_access, src_stage, dst_stage):
    """kp.OpMemoryBarrier from flag names; "a|b" ORs several bits into one int mask."""
    def mask(enum, names):
        value = 0
        for name in names.split("|"):
            value |= int(getattr(enum, name))
        return value

    acc, st = kp.AccessFlagBits, kp.PipelineStageFlagBits
    return kp.OpMemoryBarrier(tensors, mask(acc, src_access), mask(acc, dst_access),
                              mask(st, src_stage), mask(st, dst_stage), True)


def raw_after_write(mgr, with_barrier):
    """b = 2a+1, then c = 3b in one sequence; the barrier (if any) orders the write of b before its read."""
    a = mgr.tensor_t(A.copy())
    b = mgr.tensor_t(np.zeros(N, np.float32))
    c = mgr.tensor_t(np.zeros(N, np.float32))
    empty = np.zeros(0, np.uint32)
    first = mgr.algorithm([a, b], SPIRV["double"], [N // 64, 1, 1], empty, empty)
    second = mgr.algorithm([b, c], SPIRV["triple"], [N // 64, 1, 1], empty, empty)
    seq = mgr.sequence()
    seq.record(kp.OpTensorSyncDevice([a]))
    seq.record(kp.OpAlgoDispatch(first))
    if with_barrier:
        seq.record(barrier([b], "shader_write", "shader_read|shader_write", "compute_shader", "compute_shader"))
    seq.record(kp.OpAlgoDispatch(second))
    seq.record(kp.OpTensorSyncLocal([c]))
    seq.eval()
    return c.data().tolist()


def scenario_raw(mgr, with_barrier):
    return {"c": raw_after_write(mgr, with_barrier)}


def scenario_storage_copy(mgr):
    """Write a device-only (storage) tensor with a dispatch, copy it to a host tensor, read it on the host."""
    a = mgr.tensor_t(A.copy())
    storage = mgr.tensor_t(np.zeros(N, np.float32), kp.TensorTypes.storage)
    host = mgr.tensor_t(np.zeros(N, np.float32), kp.TensorTypes.host)
    empty = np.zeros(0, np.uint32)
    fill = mgr.algorithm([a, storage], SPIRV["double"], [N // 64, 1, 1], empty, empty)
    seq = mgr.sequence()
    seq.record(kp.OpTensorSyncDevice([a]))
    seq.record(kp.OpAlgoDispatch(fill))
    seq.record(barrier([storage], "shader_write", "transfer_read", "compute_shader", "transfer"))
    seq.record(kp.OpTensorCopy([storage, host]))  # needs TRANSFER_SRC usage on the storage buffer
    seq.record(barrier([host], "transfer_write", "host_read", "transfer", "host"))
    seq.eval()
    return {"host": host.data().tolist(), "storage_type": str(storage.tensor_type())}


def scenario_timestamps(mgr):
    """A timestamped sequence evaluated twice: every submission rewrites the queries."""
    a = mgr.tensor_t(A.copy())
    b = mgr.tensor_t(np.zeros(N, np.float32))
    empty = np.zeros(0, np.uint32)
    algo = mgr.algorithm([a, b], SPIRV["double"], [N // 64, 1, 1], empty, empty)
    seq = mgr.sequence(total_timestamps=8)
    seq.record(kp.OpTensorSyncDevice([a]))
    seq.record(kp.OpAlgoDispatch(algo))
    seq.record(kp.OpTensorSyncLocal([b]))
    runs = []
    for _ in range(2):
        seq.eval()
        runs.append([int(t) for t in seq.get_timestamps()])
    return {"runs": runs, "b": b.data().tolist()}


def scenario_fences(mgr):
    """Counts from the LD_PRELOAD shim around one recorded sequence evaluated 1 and then 50 times."""
    shim = ctypes.CDLL(None)  # the global scope, where LD_PRELOAD put count_fences_get
    shim.count_fences_get.argtypes = [ctypes.POINTER(ctypes.c_long)]

    def counts():
        out = (ctypes.c_long * 3)()
        shim.count_fences_get(out)
        return {"create": out[0], "destroy": out[1], "reset": out[2]}

    a = mgr.tensor_t(A.copy())
    b = mgr.tensor_t(np.zeros(N, np.float32))
    empty = np.zeros(0, np.uint32)
    algo = mgr.algorithm([a, b], SPIRV["double"], [N // 64, 1, 1], empty, empty)
    seq = mgr.sequence()
    seq.record(kp.OpTensorSyncDevice([a]))
    seq.record(kp.OpAlgoDispatch(algo))
    seq.record(kp.OpTensorSyncLocal([b]))
    result = {"before": counts()}
    seq.eval()
    result["after_1"] = counts()
    for _ in range(49):
        seq.eval()
    result["after_50"] = counts()
    result["b"] = b.data().tolist()
    mgr.destroy()  # destroys the sequence, and with it its fence
    result["after_destroy"] = counts()
    return result


SCENARIOS = {
    "raw_with_barrier": lambda mgr: scenario_raw(mgr, True),
    "raw_without_barrier": lambda mgr: scenario_raw(mgr, False),
    "storage_copy": scenario_storage_copy,
    "timestamps": scenario_timestamps,
    "fences": scenario_fences,
}


def main():
    mgr = kp.Manager()
    result = SCENARIOS[sys.argv[1]](mgr)
    if VALIDATE:
        result["messages"] = validation.new_messages()
        raw_after_write(mgr, with_barrier=False)
        result["canary_messages"] = validation.new_messages()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
