"""Command line: `vkbackprop devices` (each Vulkan device with its limits), `vkbackprop demo`,
`vkbackprop gradcheck --all` (or `vkbackprop gradcheck Linear GELU ...`), `vkbackprop train --dataset digits ...`,
`vkbackprop bench --layer linear --shape 128,784,256` (or `--suite default`)."""

from __future__ import annotations

import argparse
import os
import sys

from .device import choose_device_index, list_devices

_SHOWN = [("device_type", "type"), ("api_version", "Vulkan"), ("subgroup_size", "subgroup size"),
          ("max_shared_memory_size", "shared memory (bytes)"), ("max_work_group_invocations", "max invocations"),
          ("max_work_group_count", "max workgroups"), ("max_storage_buffer_range", "max buffer (bytes)"),
          ("timestamp_period", "timestamp period (ns)")]


def devices(_args) -> int:
    found = list_devices()
    chosen = choose_device_index(found, os.environ.get("VKBACKPROP_DEVICE"))
    for d in found:
        mark = "  <- default" if d["index"] == chosen else ""
        print(f"[{d['index']}] {d['device_name']}{mark}")
        for key, label in _SHOWN:
            value = d[key]
            if isinstance(value, tuple):
                value = ".".join(map(str, value)) if key == "api_version" else " x ".join(map(str, value))
            print(f"    {label:24s} {value}")
    return 0


def demo(_args) -> int:
    from .demo import main
    return main()


def gradcheck(args) -> int:
    from .gradcheck import check_all, format_table
    if not args.all and not args.layers:
        print("vkbackprop gradcheck: name layers or losses (e.g. Linear GELU), or use --all", file=sys.stderr)
        return 2
    try:
        rows = check_all(None if args.all else args.layers, batch=args.batch, seed=args.seed)
    except ValueError as e:
        print(f"vkbackprop gradcheck: {e}", file=sys.stderr)
        return 2
    print(format_table(rows))
    failed = sum(r.failed for r in rows)
    missing = sum(r.status == "not registered" for r in rows)
    print(f"\n{len(rows) - failed - missing} passed, {failed} failed, {missing} not registered")
    return 1 if failed else 0


def train(args) -> int:
    from .training_cli import run
    return run(args)


def bench(args) -> int:
    from .bench.cli import run
    return run(args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vkbackprop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("devices", help="list Vulkan devices and their limits").set_defaults(run=devices)
    sub.add_parser("demo", help="train an MLP on the 8x8 digits").set_defaults(run=demo)
    check = sub.add_parser("gradcheck", help="each layer's GPU forward/backward vs the float64 reference, "
                                             "and the reference vs finite differences")
    check.add_argument("layers", nargs="*", help="layer or loss class names (case-insensitive)")
    check.add_argument("--all", action="store_true", help="every exported layer and loss")
    check.add_argument("--batch", type=int, default=4, help="rows per example (default 4)")
    check.add_argument("--seed", type=int, default=0, help="seed of inputs and upstream gradients (default 0)")
    check.set_defaults(run=gradcheck)
    fit = sub.add_parser("train", help="train a model on a data set; writes metrics.json and curve.png")
    fit.add_argument("--model", default="mlp", help="mlp (input -> 128 -> ReLU -> classes) or cnn "
                     "((conv3x3-bn-relu-maxpool) x2 + linear, for square images)")
    fit.add_argument("--dataset", default="digits", help="digits, mnist:<folder of IDX files> or <file.npz>")
    fit.add_argument("--epochs", type=int, default=10, help="default 10")
    fit.add_argument("--batch-size", type=int, default=64, help="default 64")
    fit.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd", help="default sgd")
    fit.add_argument("--lr", type=float, default=None, help="default 0.1 for sgd, 1e-3 for adam/adamw")
    fit.add_argument("--schedule", choices=("none", "cosine", "step"), default="none",
                     help="cosine: to 0 over the run; step: x0.1 every third of the epochs (default none)")
    fit.add_argument("--device", type=int, default=None, help="Vulkan device index (see `vkbackprop devices`)")
    fit.add_argument("--seed", type=int, default=0, help="initialisation and shuffling seed (default 0)")
    fit.add_argument("--out", default="out/train", help="folder for metrics.json and curve.png (default out/train)")
    fit.add_argument("--checkpoint", default=None, help="save the trainer here after every epoch (atomic)")
    fit.add_argument("--resume", action="store_true", help="continue from --checkpoint up to --epochs in total")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(run=train)
    from .bench.cli import add_arguments as add_bench_arguments   # argparse only: no heavy imports
    timing = sub.add_parser("bench", help="benchmark layers' shaders alone and training steps, "
                                          "against NumPy and PyTorch")
    add_bench_arguments(timing)
    timing.set_defaults(run=bench)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
