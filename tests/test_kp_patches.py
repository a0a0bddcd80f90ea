"""One or more tests per patch in kp-patches/, each against an oracle independent of kp:
NumPy, a closed form, `vulkaninfo`, the Khronos validation layer (sync validation) and an LD_PRELOAD
shim that counts the Vulkan fence calls. Checks that need a fresh process (validation layer, shim)
run tests/kp_support/child.py in a subprocess.

Patch -> test:
  0001 numpy 2 .................... test_numpy2_round_trip
  0002 OpMemoryBarrier binding .... test_memory_barrier_*
  0003 one fence per sequence ..... test_one_fence_per_sequence, test_eval_await_timeout_keeps_running
  0004 eval_async / GIL ........... test_eval_async_*, test_eval_await_timeout_keeps_running, test_gil_*
  0005 device properties .......... test_device_properties_match_vulkaninfo, test_list_devices_*
  0006 timestamp query reset ...... test_timestamps_*
  0007 storage tensor copies ...... test_storage_tensor_copy_without_validation_errors
  0008 uniform texel buffers ...... test_texel_bindings_*, test_device_properties_match_vulkaninfo
Build option (scripts/build_kp.sh):
  no implicit debug layers ........ test_validation_layer_loads_only_when_requested
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import kp
import numpy as np
import pytest

from vkbackprop import validation
from kp_support.kp_sequences import A, EMPTY, TEXELS, raw_after_write, texel_inputs, timestamped_runs

SUPPORT = Path(__file__).parent / "kp_support"
CHILD = SUPPORT / "child.py"
RAW_HAZARD = "SYNC-HAZARD-READ-AFTER-WRITE"


# --- helpers ------------------------------------------------------------------------------------------

def compile_shader(source: Path, out_dir: Path) -> Path:
    spv = out_dir / (source.stem + ".spv")
    subprocess.run(["glslangValidator", "-V", "--target-env", "vulkan1.1", str(source), "-o", str(spv)],
                   check=True, capture_output=True)
    return spv


def clean_env() -> dict:
    """This process's environment without validation or preload settings (the child sets its own)."""
    drop = {"VK_INSTANCE_LAYERS", "VK_LAYER_SETTINGS_PATH", "VKBACKPROP_VALIDATE", "LD_PRELOAD"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def run_child(scenario: str, spirv: dict, tmp_path: Path, validate: bool = False, env: dict | None = None):
    """Run one scenario of kp_support/child.py in a fresh interpreter; return its JSON result.
    With validate=True the child enables the validation layer before creating kp.Manager and also
    reports a canary hazard's messages, which must be non-empty (the layer really was active)."""
    child_env = clean_env()
    child_env["KP_TEST_SPIRV"] = json.dumps({k: str(v) for k, v in spirv.items()})
    if validate:
        log_dir = tmp_path / f"validation-{scenario}"
        log_dir.mkdir()
        child_env["VKBACKPROP_VALIDATE"] = "1"
        child_env["KP_TEST_LOG_DIR"] = str(log_dir)
    child_env.update(env or {})
    proc = subprocess.run([sys.executable, str(CHILD), scenario], env=child_env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"child {scenario} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if validate:
        assert any(RAW_HAZARD in m for m in result["canary_messages"]), \
            "the validation layer did not report the canary hazard: was it loaded at all?"
    return result


def lcg_power(n: int) -> tuple[int, int]:
    """(A, C) with f^n(x) = A x + C mod 2^32 for f(x) = 1664525 x + 1013904223 (the spin.comp loop)."""
    mod = 1 << 32
    total_a, total_c = 1, 0
    a, c = 1664525, 1013904223
    while n:
        if n & 1:
            total_a, total_c = (a * total_a) % mod, (a * total_c + c) % mod
        a, c = (a * a) % mod, (a * c + c) % mod
        n >>= 1
    return total_a, total_c


def lcg_expected(n: int, count: int) -> np.ndarray:
    a, c = lcg_power(n)
    x = np.arange(count, dtype=np.uint64)
    return ((np.uint64(a) * x + np.uint64(c)) % np.uint64(1 << 32)).astype(np.uint32)


# --- fixtures -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spirv(tmp_path_factory):
    out = tmp_path_factory.mktemp("spirv")
    return {name: compile_shader(SUPPORT / f"{name}.comp", out) for name in ("double", "triple", "spin", "texel")}


@pytest.fixture(scope="module")
def mgr():
    validation.enable_if_requested()  # under `make test` this process is validated too (conftest)
    manager = kp.Manager()
    yield manager
    manager.destroy()


class LongDispatch:
    """A sequence [upload iteration count, spin.comp dispatch, download results] sized to run a few
    tenths of a second on this machine, so that it is still running while the tests look at it."""

    ITERS = 60000  # under lavapipe's 65535-iteration cap on a single loop
    TARGET_S = 0.5

    def __init__(self, mgr, spv: bytes):
        self.mgr, self.spv = mgr, spv
        groups = 64
        seconds = self._time_one(groups)
        # Calibration only (no assertion depends on time): scale the workgroup count to the target.
        self.groups = int(min(65535, max(groups, groups * self.TARGET_S / max(seconds, 1e-6))))
        self._build(self.groups)

    def _build(self, groups: int):
        self.count = 64 * groups
        self.iters = self.mgr.tensor_t(np.array([self.ITERS], np.uint32))
        self.out = self.mgr.tensor_t(np.zeros(self.count, np.uint32))
        algo = self.mgr.algorithm([self.iters, self.out], self.spv, [groups, 1, 1], EMPTY, EMPTY)
        self.seq = self.mgr.sequence()
        self.seq.record(kp.OpTensorSyncDevice([self.iters]))
        self.seq.record(kp.OpAlgoDispatch(algo))
        self.seq.record(kp.OpTensorSyncLocal([self.out]))

    def _time_one(self, groups: int) -> float:
        self._build(groups)
        self.seq.eval()  # warm-up
        start = time.perf_counter()
        self.seq.eval()
        return time.perf_counter() - start

    def prepare(self, iters: int):
        """Set the iteration count for the next submission and clear the old results."""
        self.iters.data()[0] = iters
        self.out.data()[:] = 0

    def check(self, iters: int):
        np.testing.assert_array_equal(self.out.data(), lcg_expected(iters, self.count))


@pytest.fixture(scope="module")
def long_dispatch(mgr, spirv):
    return LongDispatch(mgr, spirv["spin"].read_bytes())


# --- 0001: numpy 2 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint32])
def test_numpy2_round_trip(mgr, rng, dtype):
    # kp built against a pybind11 that predates numpy 2 silently reads numpy 2 arrays as zeros.
    assert np.__version__.startswith("2"), np.__version__
    if dtype == np.float32:
        values = rng.standard_normal(1000).astype(np.float32) * 1e3
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size=1000, endpoint=True, dtype=dtype)
    values[:2] = np.array([np.iinfo(np.int32).max, 7]).astype(dtype)  # distinctive, never all-zero
    t = mgr.tensor_t(values.copy())
    assert t.data().dtype == dtype
    np.testing.assert_array_equal(t.data(), values)  # tensor_t read the array
    # One sequence per eval(op): kp 0.9 re-records a reused sequence's command buffer without the
    # pool's RESET_COMMAND_BUFFER bit (VUID-vkBeginCommandBuffer-commandBuffer-00050 under validation).
    mgr.sequence().eval(kp.OpTensorSyncDevice([t]))
    t.data()[:] = 0  # the host view aliases staging memory: the values now live only on the device
    assert not t.data().any()
    mgr.sequence().eval(kp.OpTensorSyncLocal([t]))
    np.testing.assert_array_equal(t.data(), values)


# --- 0002: OpMemoryBarrier ----------------------------------------------------------------------------

def test_memory_barrier_binding_takes_int_masks(mgr):
    t = mgr.tensor_t(np.zeros(4, np.float32))
    acc, st = kp.AccessFlagBits, kp.PipelineStageFlagBits
    both = int(acc.shader_read) | int(acc.shader_write)
    assert both == 0x20 | 0x40  # VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT
    assert int(st.compute_shader) == 0x800 and int(st.transfer) == 0x1000 and int(st.host) == 0x4000
    op = kp.OpMemoryBarrier([t], int(acc.shader_write), both, int(st.compute_shader),
                            int(st.compute_shader) | int(st.transfer), barrier_on_primary=True)
    assert isinstance(op, kp.OpBase)


def test_memory_barrier_between_dependent_dispatches(mgr, spirv):
    # b = 2a + 1, barrier, c = 3b: the second dispatch reads what the first wrote.
    acc, st = kp.AccessFlagBits, kp.PipelineStageFlagBits
    c = raw_after_write(mgr, spirv["double"].read_bytes(), spirv["triple"].read_bytes(),
                        lambda b: kp.OpMemoryBarrier([b], int(acc.shader_write), int(acc.shader_read),
                                                     int(st.compute_shader), int(st.compute_shader), True))
    np.testing.assert_array_equal(c, 3 * (2 * A + 1))


def test_memory_barrier_removes_sync_hazard(spirv, tmp_path):
    # Sync validation is the oracle: OpAlgoDispatch only orders transfer -> shader, so without our
    # barrier the second dispatch's read of b races the first one's write; with it, it does not.
    expected = (3 * (2 * A + 1)).tolist()
    without = run_child("raw_without_barrier", spirv, tmp_path, validate=True)
    assert any(RAW_HAZARD in m for m in without["messages"]), without["messages"]
    with_barrier = run_child("raw_with_barrier", spirv, tmp_path, validate=True)
    assert with_barrier["messages"] == []
    assert with_barrier["c"] == expected


# --- 0003: one fence per sequence ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def fence_shim(tmp_path_factory):
    lib = tmp_path_factory.mktemp("shim") / "count_fences.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(lib), str(SUPPORT / "count_fences.c"), "-ldl"],
                   check=True, capture_output=True, text=True)
    return lib


def test_one_fence_per_sequence(spirv, fence_shim, tmp_path):
    report = tmp_path / "fences.txt"
    r = run_child("fences", spirv, tmp_path,
                  env={"LD_PRELOAD": str(fence_shim), "COUNT_FENCES_OUT": str(report)})
    before, one, fifty, destroyed = r["before"], r["after_1"], r["after_50"], r["after_destroy"]
    # The shim really intercepts kp's calls (otherwise every count below would be trivially 0).
    assert fifty["create"] >= 1
    # The first eval creates the sequence's fence; 49 more evals reuse it, resetting it each time.
    assert one["create"] - before["create"] == 1
    assert fifty["create"] == one["create"]
    assert fifty["reset"] - one["reset"] == 49
    assert fifty["destroy"] == before["destroy"]
    # Destroying the sequence (with the manager) destroys the fence: nothing leaks.
    assert destroyed["destroy"] == destroyed["create"]
    assert report.read_text().split() == [f"vkCreateFence={destroyed['create']}",
                                          f"vkDestroyFence={destroyed['destroy']}",
                                          f"vkResetFences={destroyed['reset']}"]
    assert r["b"] == (2 * A + 1).tolist()


# --- 0004 (and 0003's timeout fix): eval_async / eval_await -------------------------------------------

def test_eval_async_returns_while_running(long_dispatch):
    d = long_dispatch
    for iters in (d.ITERS, d.ITERS - 1, d.ITERS - 2):  # several async rounds reuse the one fence
        d.prepare(iters)
        d.seq.eval_async()  # unpatched, eval_async() was a blocking eval()
        assert d.seq.is_running()
        d.seq.eval_await()
        assert not d.seq.is_running()
        d.check(iters)


def test_eval_await_timeout_keeps_running(long_dispatch):
    d = long_dispatch
    d.prepare(d.ITERS - 3)
    d.seq.eval_async()
    # 1 us into a dispatch of tenths of a second: the wait times out. The sequence must stay running
    # (unpatched, the timeout destroyed the fence and marked the sequence finished).
    d.seq.eval_await(wait_ns=1000)
    assert d.seq.is_running()
    d.seq.eval_await()
    assert not d.seq.is_running()
    d.check(d.ITERS - 3)
    d.prepare(d.ITERS - 4)  # and it can be submitted again afterwards
    d.seq.eval_async()
    d.seq.eval_await()
    d.check(d.ITERS - 4)


# --- 0004: the GIL is released while waiting ----------------------------------------------------------

def count_while_running(seq, submit, wait) -> int:
    """How many loop iterations a second Python thread completes while seeing seq.is_running() true,
    between just before and just after wait(). The sequence only runs inside submit()..wait(), so
    a thread can only count if wait() lets it run: if the GIL were held, the count would be ~0."""
    go, stop = threading.Event(), threading.Event()
    running_seen = [0]

    def worker():
        go.wait()
        while not stop.is_set():
            if seq.is_running():
                running_seen[0] += 1

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        submit()
        go.set()
        before = running_seen[0]
        wait()
        after = running_seen[0]
    finally:
        stop.set()
        thread.join()
    return after - before


def test_gil_released_during_eval(long_dispatch):
    d = long_dispatch
    d.prepare(d.ITERS)
    counted = count_while_running(d.seq, submit=lambda: None, wait=d.seq.eval)
    assert counted > 1000
    d.check(d.ITERS)


def test_gil_released_during_eval_await(long_dispatch):
    d = long_dispatch
    d.prepare(d.ITERS - 5)
    counted = count_while_running(d.seq, submit=d.seq.eval_async, wait=d.seq.eval_await)
    assert counted > 1000
    d.check(d.ITERS - 5)


# --- 0005: device properties --------------------------------------------------------------------------

SUBGROUP_BITS = {"BASIC": 0x1, "VOTE": 0x2, "ARITHMETIC": 0x4, "BALLOT": 0x8, "SHUFFLE": 0x10,
                 "SHUFFLE_RELATIVE": 0x20, "CLUSTERED": 0x40, "QUAD": 0x80, "PARTITIONED": 0x100,
                 "ROTATE": 0x200, "ROTATE_CLUSTERED": 0x400}


@pytest.fixture(scope="module")
def vulkaninfo_devices():
    """The independent oracle: `vulkaninfo` text, parsed per GPU<i> section."""
    text = subprocess.run(["vulkaninfo"], env=clean_env(), capture_output=True, text=True, check=True).stdout
    sections = re.split(r"^GPU(\d+):\s*$", text, flags=re.M)
    devices = {}
    for index, body in zip(sections[1::2], sections[2::2]):
        def field(name, body=body):
            return re.search(rf"^\s*{name}\s*=\s*(.+?)\s*$", body, flags=re.M).group(1)

        subgroup = body.split("VkPhysicalDeviceSubgroupProperties:", 1)[1]
        ops = re.search(r"supportedOperations: count = \d+\n((?:\t\t.*\n)*)", subgroup).group(1).split()
        devices[int(index)] = {
            "device_name": field("deviceName"),
            "device_type": field("deviceType"),
            "max_shared_memory_size": int(field("maxComputeSharedMemorySize")),
            "max_storage_buffer_range": int(field("maxStorageBufferRange")),
            "max_texel_buffer_elements": int(field("maxTexelBufferElements")),
            "timestamp_period": float(field("timestampPeriod")),
            "subgroup_size": int(re.search(r"subgroupSize\s*=\s*(\d+)", subgroup).group(1)),
            # SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT -> SHUFFLE_RELATIVE (also ..._BIT_NV / _BIT_KHR)
            "subgroup_operations": sum(SUBGROUP_BITS[re.sub(r"_BIT(_[A-Z]+)?$", "", o.removeprefix("SUBGROUP_FEATURE_"))]
                                       for o in ops),
        }
    assert devices, "vulkaninfo listed no GPU sections"
    return [devices[i] for i in sorted(devices)]


def assert_matches_vulkaninfo(props: dict, info: dict):
    assert props["device_name"] == info["device_name"]
    # vk::to_string(deviceType) is e.g. "Cpu"/"DiscreteGpu"; vulkaninfo prints PHYSICAL_DEVICE_TYPE_CPU.
    assert props["device_type"].lower() == info["device_type"].removeprefix("PHYSICAL_DEVICE_TYPE_") \
        .replace("_", "").lower()
    assert isinstance(props["timestamp_period"], float) and props["timestamp_period"] > 0
    assert props["timestamp_period"] == pytest.approx(info["timestamp_period"], rel=1e-6)
    assert props["max_shared_memory_size"] == info["max_shared_memory_size"] > 0
    assert props["max_storage_buffer_range"] == info["max_storage_buffer_range"] > 0
    assert props["max_texel_buffer_elements"] == info["max_texel_buffer_elements"] > 0
    assert props["subgroup_size"] == info["subgroup_size"] > 0
    assert props["subgroup_operations"] == info["subgroup_operations"]


def test_device_properties_match_vulkaninfo(mgr, vulkaninfo_devices):
    # Manager() uses device 0, which is vulkaninfo's GPU0 (both enumerate through the loader).
    assert_matches_vulkaninfo(mgr.get_device_properties(), vulkaninfo_devices[0])


def test_list_devices_match_vulkaninfo(mgr, vulkaninfo_devices):
    devices = mgr.list_devices()
    assert len(devices) == len(vulkaninfo_devices)
    for props, info in zip(devices, vulkaninfo_devices):
        assert set(props) == set(mgr.get_device_properties())  # same keys per device
        assert_matches_vulkaninfo(props, info)


# --- 0006: timestamps ---------------------------------------------------------------------------------

def test_timestamps_two_evals(mgr, spirv):
    runs, b = timestamped_runs(mgr, spirv["double"].read_bytes())
    for stamps in runs:
        assert len(stamps) == 4  # one at the start, one after each of the three operations
        assert all(x <= y for x, y in zip(stamps, stamps[1:])), stamps
    # The second submission rewrote the queries: its stamps are not the first run's.
    assert runs[1][0] >= runs[0][-1], runs
    np.testing.assert_array_equal(b, 2 * A + 1)


def test_timestamps_no_validation_errors(spirv, tmp_path):
    # Unpatched, the queries were written without a reset: VUID-vkCmdWriteTimestamp-None-00830.
    r = run_child("timestamps", spirv, tmp_path, validate=True)
    assert r["messages"] == []
    for stamps in r["runs"]:
        assert len(stamps) == 4 and stamps == sorted(stamps)
    assert r["runs"][1][0] >= r["runs"][0][-1]
    assert r["b"] == (2 * A + 1).tolist()


# --- 0007: storage tensors as copy source -------------------------------------------------------------

def test_storage_tensor_copy_without_validation_errors(spirv, tmp_path):
    # Unpatched, a storage buffer lacked TRANSFER_SRC usage: VUID-vkCmdCopyBuffer-srcBuffer-00118.
    # OpTensorCopy skips its CPU-side copy for a storage source, so these values came through the GPU.
    r = run_child("storage_copy", spirv, tmp_path, validate=True)
    assert r["storage_type"] == "TensorTypes.storage"
    assert r["messages"] == []
    assert r["host"] == (2 * A + 1).tolist()


# --- build option: no implicit debug layers ---------------------------------------------------------

VALIDATION_LIBRARY = "libVkLayer_khronos_validation.so"


def test_validation_layer_loads_only_when_requested(spirv, tmp_path):
    # Stock kp enables VK_LAYER_KHRONOS_validation in every kp.Manager whenever it is installed
    # (setup.sh installs it), so every run ran under validation nobody read; built with
    # KOMPUTE_OPT_DISABLE_VK_DEBUG_LAYERS=ON, only VKBACKPROP_VALIDATE=1 loads it.
    plain = run_child("layers", spirv, tmp_path)
    validated = run_child("layers", spirv, tmp_path, validate=True)   # also proves the layer reports
    assert VALIDATION_LIBRARY in validated["layers"], validated["layers"]
    assert VALIDATION_LIBRARY not in plain["layers"], plain["layers"]
    assert plain["b"] == validated["b"] == (2 * A + 1).tolist()


# --- 0008: uniform texel buffers ----------------------------------------------------------------------

def test_texel_bindings_read_each_sampled_type_through_views_of_whole_texels(spirv, tmp_path):
    # Unpatched, every binding was a storage buffer: the pipeline's layout did not match texel.comp's
    # (VUID-VkComputePipelineCreateInfo-layout-07990) and the reads were undefined.
    r = run_child("texel", spirv, tmp_path, validate=True)
    assert r["messages"] == []
    f, i, u = texel_inputs()
    expected = f[:4 * TEXELS].astype(np.float64) + 100.0 * i + 10000.0 * u
    np.testing.assert_array_equal(r["result"][:-1], expected)
    assert r["result"][-1] == TEXELS   # the 3-value tail of f is not a texel


def test_texel_bindings_of_a_tensor_under_one_texel_are_refused(mgr, spirv):
    tiny = mgr.tensor_t(np.zeros(3, np.float32))
    whole = [mgr.tensor_t(np.zeros(8, dtype)) for dtype in (np.float32, np.int32, np.uint32)]
    with pytest.raises(Exception, match="less than one 16-byte texel"):
        mgr.algorithm([tiny] + whole, spirv["texel"].read_bytes(), [1, 1, 1], EMPTY, EMPTY)
