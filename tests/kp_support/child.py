"""Child process for tests/test_kp_patches.py (run as `python child.py SCENARIO`).

Some checks need a fresh process: the validation layer must be configured before the first Vulkan
instance exists, and the fence counter is an LD_PRELOAD shim. The parent passes the compiled SPIR-V
paths in $KP_TEST_SPIRV (JSON name -> path) and gets one JSON object back on the last stdout line.
Work that the parent also runs in its own process is recorded by kp_sequences.py, shared by both.

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
from kp_sequences import (A, EMPTY, N, TEXELS, double_sequence, raw_after_write,  # noqa: E402
                          texel_inputs, timestamped_runs)

SPIRV = {name: open(path, "rb").read() for name, path in json.loads(os.environ["KP_TEST_SPIRV"]).items()}


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


def child_raw_after_write(mgr, with_barrier):
    """kp_sequences.raw_after_write; the barrier (if any) orders the write of b before its read."""
    def order_b(b):
        return barrier([b], "shader_write", "shader_read|shader_write", "compute_shader", "compute_shader")
    return raw_after_write(mgr, SPIRV["double"], SPIRV["triple"], order_b if with_barrier else None).tolist()


def scenario_raw(mgr, with_barrier):
    return {"c": child_raw_after_write(mgr, with_barrier)}


def scenario_storage_copy(mgr):
    """Write a device-only (storage) tensor with a dispatch, copy it to a host tensor, read it on the host."""
    a = mgr.tensor_t(A.copy())
    storage = mgr.tensor_t(np.zeros(N, np.float32), kp.TensorTypes.storage)
    host = mgr.tensor_t(np.zeros(N, np.float32), kp.TensorTypes.host)
    fill = mgr.algorithm([a, storage], SPIRV["double"], [N // 64, 1, 1], EMPTY, EMPTY)
    seq = mgr.sequence()
    seq.record(kp.OpTensorSyncDevice([a]))
    seq.record(kp.OpAlgoDispatch(fill))
    seq.record(barrier([storage], "shader_write", "transfer_read", "compute_shader", "transfer"))
    seq.record(kp.OpTensorCopy([storage, host]))  # needs TRANSFER_SRC usage on the storage buffer
    seq.record(barrier([host], "transfer_write", "host_read", "transfer", "host"))
    seq.eval()
    return {"host": host.data().tolist(), "storage_type": str(storage.tensor_type())}


def scenario_texel(mgr):
    """texel.comp over a device (f), a host (i) and a storage tensor (u, filled by a copy)."""
    f_values, i_values, u_values = texel_inputs()
    f = mgr.tensor_t(f_values)
    i = mgr.tensor_t(i_values, kp.TensorTypes.host)
    u_source = mgr.tensor_t(u_values)
    u = mgr.tensor_t(np.zeros_like(u_values), kp.TensorTypes.storage)
    result = mgr.tensor_t(np.zeros(4 * TEXELS + 1, np.float32))
    algo = mgr.algorithm([f, result, i, u], SPIRV["texel"], [TEXELS, 1, 1], EMPTY, EMPTY)
    seq = mgr.sequence()
    seq.record(kp.OpTensorSyncDevice([f, u_source]))
    seq.record(barrier([u_source], "transfer_write", "transfer_read", "transfer", "transfer"))
    seq.record(kp.OpTensorCopy([u_source, u]))
    seq.record(barrier([f, u], "transfer_write", "shader_read", "transfer", "compute_shader"))
    seq.record(kp.OpAlgoDispatch(algo))
    seq.record(barrier([result], "shader_write", "transfer_read", "compute_shader", "transfer"))
    seq.record(kp.OpTensorSyncLocal([result]))
    seq.eval()
    return {"result": result.data().tolist()}


def scenario_timestamps(mgr):
    """A timestamped sequence evaluated twice: every submission rewrites the queries."""
    runs, b = timestamped_runs(mgr, SPIRV["double"])
    return {"runs": runs, "b": b.tolist()}


def scenario_fences(mgr):
    """Counts from the LD_PRELOAD shim around one recorded sequence evaluated 1 and then 50 times."""
    shim = ctypes.CDLL(None)  # the global scope, where LD_PRELOAD put count_fences_get
    shim.count_fences_get.argtypes = [ctypes.POINTER(ctypes.c_long)]

    def counts():
        out = (ctypes.c_long * 3)()
        shim.count_fences_get(out)
        return {"create": out[0], "destroy": out[1], "reset": out[2]}

    seq, b = double_sequence(mgr, SPIRV["double"])
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


def scenario_layers(mgr):
    """The Vulkan layer libraries this process has loaded, after a dispatch."""
    seq, b = double_sequence(mgr, SPIRV["double"])
    seq.eval()
    with open("/proc/self/maps") as maps:
        loaded = {os.path.basename(line.split()[-1]) for line in maps if "libVkLayer" in line}
    return {"layers": sorted(loaded), "b": b.data().tolist()}


SCENARIOS = {
    "raw_with_barrier": lambda mgr: scenario_raw(mgr, True),
    "raw_without_barrier": lambda mgr: scenario_raw(mgr, False),
    "storage_copy": scenario_storage_copy,
    "texel": scenario_texel,
    "timestamps": scenario_timestamps,
    "fences": scenario_fences,
    "layers": scenario_layers,
}


def main():
    mgr = kp.Manager()
    result = SCENARIOS[sys.argv[1]](mgr)
    if VALIDATE:
        result["messages"] = validation.new_messages()
        child_raw_after_write(mgr, with_barrier=False)
        result["canary_messages"] = validation.new_messages()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
