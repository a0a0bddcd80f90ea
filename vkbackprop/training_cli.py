"""`vkbackprop train`: fit an MLP or a CNN on a data set, write DIR/metrics.json and DIR/curve.png;
`--checkpoint PATH` saves after every epoch and `--resume` continues from it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}


def _schedule(name: str, total_steps: int, steps_per_epoch: int, epochs: int):
    import vkbackprop as vb
    if name == "cosine":
        return vb.CosineAnnealingLR(T_max=total_steps)          # down to 0 at the last step
    if name == "step":
        return vb.StepLR(step_size=steps_per_epoch * max(1, epochs // 3), gamma=0.1)
    return None


def _optimizer(name: str, lr: float, schedule):
    import vkbackprop as vb
    return {"sgd": vb.SGD, "adam": vb.Adam, "adamw": vb.AdamW}[name](lr=lr, schedule=schedule)


def plot_curve(history: dict, path: Path, title: str) -> None:
    """Loss (and accuracy, when recorded) per epoch, training and validation, as a PNG (Agg backend)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = ["loss"] + (["accuracy"] if "accuracy" in history else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key in zip(axes[0], panels):
        ax.plot(epochs, history[key], marker="o", label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", label="test")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def run(args) -> int:
    import vkbackprop as vb
    from .data import load_dataset
    from . import zoo
    from .device import Device

    def fail(message: str) -> int:
        print(f"vkbackprop train: {message}", file=sys.stderr)
        return 2

    if args.model not in ("mlp", "cnn"):
        return fail(f"unknown --model {args.model!r}: expected 'mlp' or 'cnn'")
    if args.resume and args.checkpoint is None:
        return fail("--resume needs --checkpoint PATH (the file to continue from)")
    if args.resume and not Path(args.checkpoint).is_file():
        return fail(f"--resume: no checkpoint at {args.checkpoint}")
    if args.epochs < 1:
        return fail(f"--epochs must be >= 1, got {args.epochs}")
    if args.batch_size < 1:
        return fail(f"--batch-size must be >= 1, got {args.batch_size}")
    lr = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
    try:
        x_train, y_train, x_test, y_test = load_dataset(args.dataset)
        device = None if args.device is None else Device(args.device)   # None: the default (per rank under MPI)
        classes = int(max(y_train.max(), y_test.max())) + 1
        steps_per_epoch = -(-len(x_train) // args.batch_size)
        schedule = _schedule(args.schedule, steps_per_epoch * args.epochs, steps_per_epoch, args.epochs)
        vb.manual_seed(args.seed)
        features = x_train.shape[1]
        model = zoo.mlp(features, classes) if args.model == "mlp" else zoo.cnn(zoo.image_shape(features), classes)
        trainer = vb.Trainer(model, loss=vb.CrossEntropyLoss(), optimizer=_optimizer(args.optimizer, lr, schedule),
                             batch_size=args.batch_size, device=device,
                             resume=args.checkpoint if args.resume else None)
        device, ranks = trainer.device, trainer.comm.size if trainer.comm else 1
        say = print if trainer.comm is None or trainer.comm.rank == 0 else (lambda *a, **k: None)   # rank 0 reports
        say(f"device: [{device.index}] {device.name} ({device.properties['device_type']})"
            f"{f' on each of {ranks} MPI ranks' if ranks > 1 else ''}; "
            f"{args.dataset}: {len(x_train)} train, {len(x_test)} test, {features} features, {classes} classes")
        if args.resume:
            say(f"resumed from {args.checkpoint}: {trainer.epochs} epochs ({trainer.steps} steps) done")
        start = time.perf_counter()
        trainer.fit(x_train, y_train, max(0, args.epochs - trainer.epochs), validation_data=(x_test, y_test),
                    seed=args.seed, verbose=not args.quiet, checkpoint=args.checkpoint)
        seconds = time.perf_counter() - start
        test = trainer.evaluate(x_test, y_test)
    except (ValueError, FileNotFoundError) as e:
        return fail(str(e))
    if trainer.comm is not None and trainer.comm.rank != 0:
        return 0   # rank 0 writes the results: every rank holds the same ones

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "model": args.model, "dataset": args.dataset, "epochs": args.epochs, "batch_size": args.batch_size,
        "optimizer": args.optimizer, "lr": lr, "schedule": args.schedule, "seed": args.seed,
        "device": {"index": device.index, "name": device.name, "type": str(device.properties["device_type"])},
        "train_samples": len(x_train), "test_samples": len(x_test), "classes": classes,
        "train_seconds": seconds, "history": trainer.history, "test": test,
        "checkpoint": args.checkpoint, "resumed": bool(args.resume), "ranks": ranks,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_curve(trainer.history, out / "curve.png", f"{args.model} on {args.dataset} ({args.optimizer}, lr {lr:g})")
    print(f"test loss {test['loss']:.4f}, test accuracy {test['accuracy']:.2%} on {len(x_test)} samples "
          f"({args.epochs} epochs in {seconds:.1f} s); wrote {out / 'metrics.json'} and {out / 'curve.png'}")
    return 0
