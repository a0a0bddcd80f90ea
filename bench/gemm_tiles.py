"""Benchmark: every tile of the scalar GEMM core's tuning family (`gemm.TILES`: register-blocked and
shared-memory tiles) on Linear's forward GEMM, vs PyTorch's matmul in the same run (CUDA when
present, fp32 with TF32 off). What `VKBACKPROP_TUNE=1` chooses from, all of it shown: the numbers to
pick a device's default tile by.

    .venv/bin/python bench/gemm_tiles.py [--shape 1024,1024,1024 ...] [--repeats 5] [--json out.json]

A shape is batch,in_features,out_features (m, k, n of y = x W^T). GFLOP/s from GPU timestamps,
best of the repeats (after one warm-up run); a tile the device cannot run is listed as such.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import vkbackprop as vb
from vkbackprop import tuning
from vkbackprop.bench.timing import torch_device, torch_sync, wall_times
from vkbackprop.layers import gemm

SHADER = "linear/forward.comp"


def parse_shape(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected batch,in_features,out_features (3 positive integers), got {text!r}")
    return tuple(int(p) for p in parts)


def tile_seconds(device, tile: dict, m: int, k: int, n: int, buffers: dict, repeats: int) -> float:
    """Best GPU time of the forward GEMM with `tile` (ValueError if the device cannot run it)."""
    gemm.check_tile(device, SHADER, k, tile)
    return tuning.best_gpu_seconds(device, gemm.tile_dispatch(device, SHADER, buffers, m, n, k, tile), repeats)


def torch_seconds(m: int, k: int, n: int, repeats: int) -> tuple[str, float]:
    import torch
    where = torch_device()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-1, 1, (m, k)).astype(np.float32)).to(where)
    w = torch.from_numpy(rng.uniform(-1, 1, (n, k)).astype(np.float32)).to(where)
    return where, wall_times(lambda: x @ w.T, repeats, warmup=2, sync=torch_sync(where)).min


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=parse_shape, action="append",
                        help="batch,in_features,out_features (repeatable; default 1024^3 and 128,784,256)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    shapes = args.shape or [(1024, 1024, 1024), (128, 784, 256)]

    device = vb.Device.default()
    print(f"device: {device.name}; linear forward (y = x W^T) per tile, best of {args.repeats}")
    results = []
    for m, k, n in shapes:
        flop = 2.0 * m * n * k
        buffers = tuning.stand_ins(device, {"x": device.buffer("x", (m, k)), "weight": device.buffer("w", (n, k)),
                                            "bias": device.buffer("b", (n,)), "y": device.buffer("y", (m, n))})
        where, torch_s = torch_seconds(m, k, n, args.repeats)
        print(f"\n{m}x{k}x{n}: torch ({where}) {torch_s * 1e3:.3f} ms, {flop / torch_s / 1e9:.1f} GFLOP/s")
        for tile in gemm.TILES:
            entry = {"shape": [m, k, n], "tile": tile, "torch_device": where, "torch_ms": torch_s * 1e3}
            try:
                s = tile_seconds(device, tile, m, k, n, buffers, args.repeats)
            except ValueError as e:
                print(f"  {str(tile):58s} cannot run here: {e}")
                results.append(dict(entry, error=str(e)))
                continue
            print(f"  {str(tile):58s} {s * 1e3:9.3f} ms {flop / s / 1e9:9.1f} GFLOP/s {torch_s / s:6.0%} of torch")
            results.append(dict(entry, ms=s * 1e3, gflops=flop / s / 1e9, fraction_of_torch=torch_s / s))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device.name, "results": results}, f, indent=1)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
