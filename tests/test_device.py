"""Device choice (discrete > integrated > lavapipe, VKBACKPROP_DEVICE overrides) and `vkbackprop devices`."""

import os
import subprocess
import sys

import pytest

from vkbackprop.device import choose_device_index, list_devices


def fake(*types):
    return [{"index": i, "device_type": t} for i, t in enumerate(types)]


def test_prefers_discrete_then_integrated_then_cpu():
    assert choose_device_index(fake("Cpu", "IntegratedGpu", "DiscreteGpu"), None) == 2
    assert choose_device_index(fake("Cpu", "IntegratedGpu"), None) == 1
    assert choose_device_index(fake("Cpu"), "") == 0
    assert choose_device_index(fake("DiscreteGpu", "DiscreteGpu"), None) == 0


def test_override_and_its_errors():
    assert choose_device_index(fake("DiscreteGpu", "Cpu"), "1") == 1
    with pytest.raises(ValueError, match="only devices 0..1 exist"):
        choose_device_index(fake("DiscreteGpu", "Cpu"), "5")
    with pytest.raises(ValueError, match="must be a device index"):
        choose_device_index(fake("Cpu"), "gpu")


def test_device_reports_limits(device):
    p = device.properties
    assert p["subgroup_size"] >= 1 and p["max_shared_memory_size"] >= 16384 and p["timestamp_period"] > 0
    assert any(d["device_name"] == device.name for d in list_devices())


def test_devices_command_lists_devices_with_limits():
    out = subprocess.run([sys.executable, "-m", "vkbackprop", "devices"], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    for d in list_devices():
        assert f"[{d['index']}] {d['device_name']}" in out
    assert "subgroup size" in out and "<- default" in out


def test_bad_device_override_is_a_clear_error():
    env = dict(os.environ, VKBACKPROP_DEVICE="99")
    proc = subprocess.run([sys.executable, "-c", "import vkbackprop as vb; vb.Device()"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0 and "VKBACKPROP_DEVICE=99" in proc.stderr


def test_loops_longer_than_lavapipe_runs_are_refused(device):
    """Mesa 22's lavapipe silently stops shader loops after 65,535 iterations (nested loops count
    together): a plan that would need more is a clear error, not a wrong result. Device.loop_limit
    probes for it; checked here with another shader, a float sum over limit + 10 ones."""
    import numpy as np

    import vkbackprop as vb
    from vkbackprop.device import LLVMPIPE_LOOP_LIMIT
    from vkbackprop.schedule import Recorder
    from vkbackprop.shaders import compile_shader
    program = compile_shader("linear/backward_bias.comp")
    dy = device.buffer("dy", (LLVMPIPE_LOOP_LIMIT + 10, 1), staged=True)
    dy.host_view()[...] = 1.0
    out = device.buffer("dbias", (1,), staged=True)
    rec = Recorder(device)
    rec.upload([dy])
    rec.dispatch(device.dispatch(program, {"dy": dy, "dbias": out}, (1, 1, 1), dict(B=dy.shape[0], N=1)))
    rec.download([out])
    rec.sequence.eval()
    if device.loop_limit is None:   # a GPU, or an llvmpipe that runs loops to the end
        assert out.host_view()[0] == np.float32(LLVMPIPE_LOOP_LIMIT + 10)
        return
    assert device.name.startswith("llvmpipe") and out.host_view()[0] == np.float32(device.loop_limit)
    # ... so the layers refuse such shapes up front.
    # The scalar GEMM core loops once per k; the vec4 one (multiples of 4) once per 4.
    for width in (70001, 4 * 70000):
        with pytest.raises(ValueError, match=f"reduction length {width}.*stops loops after 65535"):
            vb.Trainer(vb.Sequential(vb.Linear(width, 1)), vb.MSELoss(), vb.SGD(lr=0.1), batch_size=1, device=device)


def test_the_placeholder_binds_unused_inputs_only(device):
    """A writable binding of the shared placeholder would make the hazard tracker order every
    dispatch that binds it: refused before anything is recorded."""
    y = device.buffer("y", (16,))
    with pytest.raises(ValueError, match="binding 'y' is writable; the placeholder"):
        device.dispatch("relu/forward.comp", {"x": y, "y": device.placeholder, "x4": y, "y4": device.placeholder}, (1,),
                        {"NUMEL": 4})
    device.dispatch("relu/forward.comp", {"x": device.placeholder, "y": y, "x4": device.placeholder, "y4": y}, (1,),
                    {"NUMEL": 4})   # read-only: fine
