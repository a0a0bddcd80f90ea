"""The main job: train an MLP on scikit-learn's bundled 8x8 digits on the default Vulkan device."""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import vkbackprop as vb

SEED, EPOCHS, BATCH, LR = 0, 60, 32, 0.1


def load_data():
    """Fixed 80/20 split; pixels 0..16 scaled to 0..1."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    return train_test_split(x, digits.target, test_size=0.2, random_state=SEED, stratify=digits.target)


def main() -> int:
    x_train, x_test, y_train, y_test = load_data()
    vb.manual_seed(SEED)
    model = vb.Sequential(vb.Linear(64, 128), vb.ReLU(), vb.Linear(128, 10))
    trainer = vb.Trainer(model, loss=vb.CrossEntropyLoss(), optimizer=vb.SGD(lr=LR), batch_size=BATCH)
    print(f"device: {trainer.device.name} ({trainer.device.properties['device_type']})")

    rng = np.random.default_rng(SEED)
    start = time.perf_counter()
    with tqdm(range(EPOCHS), desc="training", unit="epoch") as bar:
        for _ in bar:
            order = rng.permutation(len(x_train))
            losses = [trainer.step(x_train[idx], y_train[idx])
                      for idx in np.array_split(order[: len(order) // BATCH * BATCH], len(order) // BATCH)]
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
    seconds = time.perf_counter() - start

    accuracy = float((trainer.predict(x_test).argmax(axis=1) == y_test).mean())
    print(f"trained {EPOCHS} epochs in {seconds:.1f} s; test accuracy {accuracy:.2%} on {len(y_test)} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
