"""`vkbackprop bench` (also `python -m vkbackprop.bench`): arguments and the order of work.

    vkbackprop bench --layer linear --shape 128,784,256 [--shape ...] [--repeats 10] [--warmup 2]
    vkbackprop bench --suite default|ops|steps [--max-seconds 60] [--json out.json] [--plots DIR]

Heavy imports (torch, matplotlib, the device) happen in `run`, so the main CLI stays fast."""

from __future__ import annotations

import argparse
import sys

SUITES = {"default": ("ops", "steps"), "ops": ("ops",), "steps": ("steps",)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .ops import OPS     # the op table only (the layers are imported with vkbackprop anyway)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--layer", help=f"benchmark this op alone: {', '.join(OPS)}")
    what.add_argument("--suite", choices=SUITES, help="default: every op's default shapes, the training-step "
                      "suite and the MLP sweeps; ops or steps: one half of it")
    by_dims = {}             # ops taking the same sizes, in table order
    for op in OPS.values():
        by_dims.setdefault(op.dims, []).append(op.name)
    dims = "; ".join(f"{', '.join(names)}: {','.join(d)}" for d, names in by_dims.items())
    parser.add_argument("--shape", action="append", help="the --layer's sizes, comma-separated, e.g. 128,784,256 "
                        f"for linear; repeat for several; default: its suite shapes. Per op: {dims}. conv2d: "
                        "stride 1, padding kernel // 2; maxpool2d, avgpool2d: stride = kernel; recurrent ops: "
                        "one layer; embedding: random token ids")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per measurement (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="skip a training-step configuration "
                        "whose estimated measuring time exceeds this (default 60)")
    parser.add_argument("--device", type=int, default=None, help="Vulkan device index (see `vkbackprop devices`)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--plots", help="also write PNG plots into this folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _checked(args) -> list:
    """[(op, shape)] to benchmark; ValueError for arguments that make no sense."""
    from .ops import OPS, get_op
    if args.layer is None and args.suite is None:
        raise ValueError("name a --layer (with --shape) or a --suite")
    if args.shape and args.layer is None:
        raise ValueError("--shape goes with --layer")
    if args.repeats < 1 or args.warmup < 0:
        raise ValueError(f"--repeats must be >= 1 and --warmup >= 0, got {args.repeats} and {args.warmup}")
    if not args.max_seconds > 0:
        raise ValueError(f"--max-seconds must be > 0, got {args.max_seconds}")
    if args.layer is not None:
        op = get_op(args.layer.lower())
        shapes = [op.parse_shape(s) for s in args.shape] if args.shape else list(op.default_shapes)
        if not shapes:
            raise ValueError(f"--layer {op.name} has no default shape: give --shape {','.join(op.dims)}")
        return [(op, s) for s in shapes]
    if "ops" not in SUITES[args.suite]:
        return []
    return [(op, s) for op in OPS.values() for s in op.default_shapes]


def run(args) -> int:
    try:
        work = _checked(args)
    except ValueError as e:
        print(f"vkbackprop bench: {e}", file=sys.stderr)
        return 2
    try:
        import torch
    except ImportError as e:   # torch is no dependency of vkbackprop, only of its tests and this runner
        print(f"vkbackprop bench: measures every op and step against PyTorch in the same run, and PyTorch "
              f"does not import ({e}): install it (pip install torch)", file=sys.stderr)
        return 2

    import numpy as np
    from tqdm import tqdm

    from ..device import Device
    from . import report as rep, steps
    from .layer_bench import measure_op
    from .peak import measure_peak
    from .timing import torch_device

    device = Device.default() if args.device is None else Device(args.device)
    props = device.properties
    where = torch_device()
    result = rep.Report(
        device={"name": device.name, "type": props["device_type"], "timestamp_period_ns": props["timestamp_period"],
                "subgroup_size": props["subgroup_size"]},
        host={"torch_device": where, "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
              "numpy_version": np.__version__},
        settings={"repeats": args.repeats, "warmup": args.warmup, "max_seconds": args.max_seconds})
    timed = dict(repeats=args.repeats, warmup=args.warmup)

    def bar(items, desc):
        return tqdm(items, desc=desc, leave=False, disable=True if args.quiet else None)

    if work:
        result.peak = measure_peak(device, **timed)
        rng = np.random.default_rng(0)
        for op, shape in bar(work, "ops"):
            try:
                result.ops += measure_op(device, op, shape, rng=rng, torch_device=where, **timed)
            except ValueError as e:   # a shape this device cannot plan (e.g. lavapipe's loop limit)
                print(f"vkbackprop bench: --layer {op.name} --shape {','.join(map(str, shape))}: {e}",
                      file=sys.stderr)
                return 2
    if args.suite and "steps" in SUITES[args.suite]:
        result.gemm_rate = steps.gemm_rate(device, **timed)
        step = dict(device=device, max_seconds=args.max_seconds, rate=result.gemm_rate, torch_device=where, **timed)
        result.steps = [steps.measure_step(c, **step) for c in bar(steps.suite_configs(), "training steps")]
        for axis, points in steps.sweep_configs().items():
            result.sweeps[axis] = [steps.measure_step(c, extra={axis: value}, **step)
                                   for value, c in bar(points, f"sweep {axis}")]

    print(rep.format_report(result))
    if args.json:
        rep.write_json(result, args.json)
        print(f"\nwrote {args.json}")
    if args.plots:
        for path in rep.write_plots(result, args.plots):
            print(f"wrote {path}")
    wrong = [r for r in result.ops if r.max_rel_error > rep.MISMATCH]
    return 1 if wrong else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vkbackprop bench", description="Benchmark layers' shaders alone "
                                     "and training steps, against NumPy and PyTorch in the same run.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
