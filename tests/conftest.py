"""Shared fixtures. With VKBACKPROP_VALIDATE=1 (as `make test` sets) every test also fails if the
Khronos validation layer (with synchronization validation) logged an error while it ran."""

import zlib

import numpy as np
import pytest

from vkbackprop import validation
from vkbackprop.device import Device


@pytest.fixture(scope="session")
def device():
    return Device.default()


@pytest.fixture
def rng(request):
    # A fixed seed per test, different between tests.
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(autouse=True)
def no_validation_errors():
    validation.new_messages()  # drop anything logged before this test
    yield
    errors = validation.new_messages()
    if errors:
        pytest.fail(f"{len(errors)} Vulkan validation error(s), first:\n{errors[0][:2000]}", pytrace=False)


@pytest.fixture
def dispatches(device, monkeypatch):
    """Every Dispatch the device makes while the test runs (its program, defines and constants)."""
    made = []
    dispatch = device.dispatch
    monkeypatch.setattr(device, "dispatch", lambda *args, **kw: made.append(dispatch(*args, **kw)) or made[-1])
    return made
