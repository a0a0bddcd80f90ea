"""The plans a GPU gets, run on the suite's device: with the device reported as a discrete GPU,
Linear runs on the scalar GEMM core (or a shared-memory tile), vec4 inputs are storage buffers,
convolutions use the GPU tile and the update loops over fewer quads per invocation. Training steps
of an MLP and a residual CNN then agree with PyTorch, as on the device's own plans. (This proves the
GPU plans' structure and shaders on lavapipe; a GPU's own scheduling is for the device check.)"""

import numpy as np
import pytest
import torch

import vkbackprop as vb
from vkbackprop import tuning
from vkbackprop.layers import gemm, gemm_shuffle
from oracles import check_step_against_twin, torch_twin
from test_cnn import TorchResidualNet, vk_residual_net

TILES = [None, gemm.SHARED_TILES[0], gemm.SHARED_TILES[2]]


@pytest.fixture
def as_gpu(device, monkeypatch, tmp_path, dispatches):
    """The device reported as a discrete GPU; every dispatch it makes is recorded."""
    monkeypatch.setenv("VKBACKPROP_CACHE_DIR", str(tmp_path))   # no tuned tiles from elsewhere
    monkeypatch.delenv(tuning.TUNE_ENV, raising=False)
    monkeypatch.delenv("VKBACKPROP_TEXEL_READS", raising=False)
    monkeypatch.delenv(gemm_shuffle.KERNEL_ENV, raising=False)
    monkeypatch.setitem(device.properties, "device_type", "DiscreteGpu")
    return dispatches


def _force(monkeypatch, tile):
    if tile is not None:
        monkeypatch.setattr(tuning, "choose_tile", lambda *args, **kw: dict(tile))


def _gemm_tiles(dispatches) -> list:
    """The tiles of the GEMM dispatches, either core's."""
    return [gemm.tile_of(d.constants) or gemm_shuffle.tile_of(d.constants) for d in dispatches if "TM" in d.constants]


@pytest.mark.parametrize("tile", TILES, ids=str)
def test_an_mlp_step_on_the_gpu_plan_matches_pytorch(device, rng, monkeypatch, as_gpu, tile):
    _force(monkeypatch, tile)
    batch = 48
    model = vb.Sequential(vb.Linear(60, 132), vb.ReLU(), vb.Linear(132, 10))
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=0.1), batch, device=device)
    used = _gemm_tiles(as_gpu)
    assert used and all("SHARE" not in d for d in used)              # no vec4 shuffle core
    assert used == [dict(tile or gemm.TILE)] * len(used)
    assert all(not dict(d.program.defines).get("TEXEL_READS") for d in as_gpu)   # storage-buffer reads
    twin = torch_twin(torch.nn.Sequential(torch.nn.Linear(60, 132), torch.nn.ReLU(), torch.nn.Linear(132, 10)), model)
    for _ in range(2):
        x = rng.standard_normal((batch, 60)).astype(np.float32)
        y = rng.integers(0, 10, batch)
        twin.zero_grad()
        want = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
        check_step_against_twin(trainer, x, y, twin, want)


@pytest.mark.parametrize("tile", TILES, ids=str)
def test_a_residual_cnn_step_on_the_gpu_plan_matches_pytorch(device, rng, monkeypatch, as_gpu, tile):
    _force(monkeypatch, tile)
    c_in, width, stride, batch = 3, 6, 2, 5
    model = vk_residual_net(c_in, width, stride)
    twin = torch_twin(TorchResidualNet(c_in, width, stride), model, torch.float64)
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=0.1), batch, device=device)
    assert any(d.program.path.startswith("conv2d/") for d in as_gpu if "TM" in d.constants)
    assert _gemm_tiles(as_gpu) == [dict(tile or gemm.TILE)] * len(_gemm_tiles(as_gpu))
    x = rng.standard_normal((batch, c_in * 7 * 9)).astype(np.float32)
    y = rng.integers(0, 5, batch)
    want = torch.nn.functional.cross_entropy(twin(torch.tensor(x, dtype=torch.float64).reshape(batch, c_in, 7, 9)),
                                             torch.tensor(y))
    check_step_against_twin(trainer, x, y, twin, want)


@pytest.mark.parametrize("kernel,shuffle", [("shuffle", True), ("scalar", False), ("auto", False)])
def test_the_environment_chooses_the_gemm_kernel(device, rng, monkeypatch, as_gpu, kernel, shuffle):
    """VKBACKPROP_GEMM_KERNEL overrides the device's choice (auto: the scalar core on a GPU); a
    training step is right either way; other values are refused, naming the variable."""
    monkeypatch.setenv(gemm_shuffle.KERNEL_ENV, kernel)
    batch = 8
    model = vb.Sequential(vb.Linear(12, 8), vb.ReLU(), vb.Linear(8, 4))
    trainer = vb.Trainer(model, vb.CrossEntropyLoss(), vb.SGD(lr=0.1), batch, device=device)
    assert {"SHARE" in d for d in _gemm_tiles(as_gpu)} == {shuffle}
    twin = torch_twin(torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4)), model)
    x, y = rng.standard_normal((batch, 12)).astype(np.float32), rng.integers(0, 4, batch)
    check_step_against_twin(trainer, x, y, twin, torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)),
                                                                                    torch.from_numpy(y)))
    monkeypatch.setenv(gemm_shuffle.KERNEL_ENV, "fast")
    with pytest.raises(ValueError, match="VKBACKPROP_GEMM_KERNEL must be one of auto, shuffle, scalar, got 'fast'"):
        vb.Trainer(vb.Sequential(vb.Linear(12, 8)), vb.MSELoss(), vb.SGD(lr=0.1), batch, device=device)
