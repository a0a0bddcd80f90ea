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
