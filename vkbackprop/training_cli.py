"""`vkbackprop train`: fit an MLP on a data set, write DIR/metrics.json and DIR/curve.png."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

HIDDEN = 128
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
    from .device import Device

    def fail(message: str) -> int:
        print(f"vkbackprop train: {message}", file=sys.stderr)
        return 2

    if args.model != "mlp":
        if args.model == "cnn":
            return fail("--model cnn is not available yet (only --model mlp)")
        return fail(f"unknown --model {args.model!r} (only 'mlp'; 'cnn' is not available yet)")
    if args.epochs < 1:
        return fail(f"--epochs must be >= 1, got {args.epochs}")
    if args.batch_size < 1:
        return fail(f"--batch-size must be >= 1, got {args.batch_size}")
    lr = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
    try:
        x_train, y_train, x_test, y_test = load_dataset(args.dataset)
        device = Device.default() if args.device is None else Device(args.device)
        classes = int(max(y_train.max(), y_test.max())) + 1
        steps_per_epoch = -(-len(x_train) // args.batch_size)
        schedule = _schedule(args.schedule, steps_per_epoch * args.epochs, steps_per_epoch, args.epochs)
        vb.manual_seed(args.seed)
        model = vb.Sequential(vb.Linear(x_train.shape[1], HIDDEN), vb.ReLU(), vb.Linear(HIDDEN, classes))
        trainer = vb.Trainer(model, loss=vb.CrossEntropyLoss(), optimizer=_optimizer(args.optimizer, lr, schedule),
                             batch_size=args.batch_size, device=device)
        print(f"device: [{device.index}] {device.name} ({device.properties['device_type']}); "
              f"{args.dataset}: {len(x_train)} train, {len(x_test)} test, {x_train.shape[1]} features, {classes} classes")
        start = time.perf_counter()
        history = trainer.fit(x_train, y_train, args.epochs, validation_data=(x_test, y_test), seed=args.seed,
                              verbose=not args.quiet)
        seconds = time.perf_counter() - start
        test = trainer.evaluate(x_test, y_test)
    except (ValueError, FileNotFoundError) as e:
        return fail(str(e))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "model": args.model, "dataset": args.dataset, "epochs": args.epochs, "batch_size": args.batch_size,
        "optimizer": args.optimizer, "lr": lr, "schedule": args.schedule, "seed": args.seed,
        "device": {"index": device.index, "name": device.name, "type": str(device.properties["device_type"])},
        "train_samples": len(x_train), "test_samples": len(x_test), "classes": classes,
        "train_seconds": seconds, "history": history, "test": test,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_curve(history, out / "curve.png", f"{args.model} on {args.dataset} ({args.optimizer}, lr {lr:g})")
    print(f"test loss {test['loss']:.4f}, test accuracy {test['accuracy']:.2%} on {len(x_test)} samples "
          f"({args.epochs} epochs in {seconds:.1f} s); wrote {out / 'metrics.json'} and {out / 'curve.png'}")
    return 0
