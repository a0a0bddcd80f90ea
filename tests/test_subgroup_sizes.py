"""Results must not depend on the subgroup size (docs/architecture.md, "Shaders"): NVIDIA runs 32
lanes, AMD 32 or 64, Intel 8 to 32, lavapipe 8. lavapipe's subgroup is its SIMD width, which
LP_NATIVE_VECTOR_WIDTH sets (128 bits: 4 lanes, 1024 bits: 32), so these tests run lavapipe in
subprocesses at other subgroup sizes:
- the tests of the shaders that use subgroup operations or read quads, against their oracles (the
  float64 reference, PyTorch), at 4 and 32 lanes: fewer lanes than share a GEMM tile (the core's
  path without shuffles) and a GPU's 32;
- three small trainings (subgroup_support/probe.py) at 4, 8 and 32 lanes: the same bits."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vkbackprop.device import list_devices

TESTS = Path(__file__).parent
ORACLE_TESTS = [
    "test_conv.py::test_shuffle_core_geometries",
    "test_conv.py::test_an_infinite_input_reaches_only_the_outputs_whose_windows_hold_it",
    "test_conv.py::test_shuffle_core_with_storage_buffer_reads",
    "test_conv.py::test_split_reductions",
    "test_layers_gpu.py::test_linear",
    "test_layers_gpu.py::test_linear_gemm_kernels",
    "test_losses.py::test_gpu_matches_reference_and_pytorch",
    "test_norm.py::test_batch_norm_quads",
    "test_norm.py::test_layer_norm_gpu_matches_reference",
    "test_recurrent.py::test_hidden_sizes_in_quads",
    "test_vec4_elementwise.py",
    "test_clip_guard.py",
    "test_softmax.py",
]


def lavapipe_at(lanes: int, cache: Path) -> dict:
    """The environment that runs vkbackprop on lavapipe with `lanes`-wide subgroups (checked) and
    an empty tile cache, with the default GEMM kernel choice."""
    cpus = [d["index"] for d in list_devices() if d["device_type"] == "Cpu"]
    assert cpus, "no lavapipe device (scripts/setup.sh installs mesa-vulkan-drivers)"
    env = dict(os.environ, LP_NATIVE_VECTOR_WIDTH=str(32 * lanes), VKBACKPROP_DEVICE=str(cpus[0]),
               VKBACKPROP_CACHE_DIR=str(cache))
    for name in ("VKBACKPROP_TUNE", "VKBACKPROP_GEMM_KERNEL"):
        env.pop(name, None)
    shown = subprocess.run([sys.executable, "-c", "import vkbackprop as vb; "
                            "print(vb.Device.default().properties['subgroup_size'])"],
                           env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    assert int(shown) == lanes, f"LP_NATIVE_VECTOR_WIDTH={32 * lanes} gave {shown.strip()} lanes, not {lanes}"
    return env


@pytest.mark.parametrize("lanes", [4, 32])
def test_subgroup_shaders_match_their_oracles(lanes, tmp_path):
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *ORACLE_TESTS],
                         cwd=TESTS, env=lavapipe_at(lanes, tmp_path), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"at {lanes} lanes:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"


def test_training_gives_the_same_bits_at_every_subgroup_size(tmp_path):
    results = {}
    for lanes in (4, 8, 32):
        out = tmp_path / f"{lanes}.npz"
        subprocess.run([sys.executable, str(TESTS / "subgroup_support" / "probe.py"), str(out)],
                       env=lavapipe_at(lanes, tmp_path / "cache"), timeout=600, check=True)
        results[lanes] = dict(np.load(out))
    for lanes, got in results.items():
        assert int(got.pop("subgroup_size")) == lanes
    # The probe ran the shaders it is there for (a change of path choice would make it vacuous).
    for shader in ("conv2d/forward_shuffle.comp", "conv2d/backward_weight_shuffle.comp",
                   "conv2d/backward_input_shuffle.comp", "conv2d/backward_input_phases.comp",
                   "linear/forward_shuffle.comp", "linear/backward_weight_shuffle.comp",
                   "linear/backward_input_shuffle.comp", "batchnorm/statistics.comp", "layernorm/forward_rows.comp",
                   "lstm/forward_step.comp", "lstm/backward_step.comp", "guard/sum_squares.comp"):
        assert shader in results[8]["shaders"], shader
    expected = results.pop(8)
    assert all(np.isfinite(v).all() for k, v in expected.items() if k != "shaders")
    for lanes, got in results.items():
        assert got.keys() == expected.keys()
        differing = [k for k in expected if expected[k].tobytes() != got[k].tobytes()]
        assert not differing, f"at {lanes} lanes, not the bits of 8 lanes: {differing}"
