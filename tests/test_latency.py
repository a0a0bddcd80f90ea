"""Low-latency mode (vkbackprop/latency.py): a PM QoS request through /dev/cpu_dma_latency, held
while acquired and dropped with its file; opt-in through VKBACKPROP_LOW_LATENCY=1. The kernel's
aggregate target, read back from the device file, is the oracle; the file protocol (one native
int32) and the refusal path are checked on ordinary files where the device cannot be written."""

import os
import struct

import pytest

import vkbackprop as vb
from vkbackprop import latency

WRITABLE = os.access(latency.PATH, os.W_OK)


@pytest.mark.skipif(not WRITABLE, reason=f"{latency.PATH} is not writable here (needs root); CI runs as root")
def test_a_request_sets_the_kernels_target_while_held_and_drops_with_its_file():
    before = latency.current_target_us()
    with latency.WakeLatencyRequest(0) as request:
        assert request.held and latency.current_target_us() == 0
    assert not request.held and latency.current_target_us() == before


def test_the_request_writes_one_native_int32_and_holds_the_file_open(tmp_path):
    path = tmp_path / "qos"
    path.write_bytes(b"")
    request = latency.WakeLatencyRequest(7, path=str(path))
    assert request.acquire() and request.held
    assert path.read_bytes() == struct.pack("i", 7)
    assert request.acquire()   # acquiring again keeps the one request
    assert path.read_bytes() == struct.pack("i", 7)
    request.release()
    assert not request.held


def test_without_permission_it_warns_and_changes_nothing(tmp_path):
    request = latency.WakeLatencyRequest(0, path=str(tmp_path / "missing" / "qos"))
    with pytest.warns(RuntimeWarning, match="low-latency mode unavailable: cannot open .*qos for writing"):
        assert not request.acquire()
    assert not request.held


@pytest.mark.parametrize("bad", [-1, 1.5, True, 2**31, "0"])
def test_bad_latencies_raise(bad):
    with pytest.raises(ValueError, match="WakeLatencyRequest: microseconds must be an int"):
        latency.WakeLatencyRequest(bad)


def test_the_environment_switch(monkeypatch, tmp_path):
    path = tmp_path / "qos"
    path.write_bytes(b"")
    monkeypatch.setattr(latency, "_process_request", latency.WakeLatencyRequest(0, path=str(path)))
    monkeypatch.setenv(latency.ENV, "0")
    assert not latency.hold_if_requested() and path.read_bytes() == b""
    monkeypatch.setenv(latency.ENV, "yes")
    with pytest.raises(ValueError, match="VKBACKPROP_LOW_LATENCY must be 0 or 1, got 'yes'"):
        latency.hold_if_requested()
    monkeypatch.setenv(latency.ENV, "1")
    assert vb.Device().low_latency and path.read_bytes() == struct.pack("i", 0)
    latency._process_request.release()
