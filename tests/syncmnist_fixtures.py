"""A small fake MNIST for SyncMNIST tests: random sprites, balanced classes."""

import numpy as np

TRAIN_PER_CLASS, TEST_PER_CLASS = 12, 4


def fake_mnist(per_class: int, seed: int = 0):
    """uint8 [10 * per_class, 28, 28] sprites (max 255, many pixels < 10), labels 0-9."""
    rng = np.random.default_rng(seed)
    n = 10 * per_class
    images = (rng.integers(0, 256, (n, 28, 28)) * (rng.random((n, 28, 28)) < 0.35))
    images = images.astype(np.uint8)
    images[:, 14, 14] = 255
    labels = np.tile(np.arange(10, dtype=np.uint8), per_class)
    return images, labels


def write_fake_npz(path, seed: int = 0) -> str:
    x_train, y_train = fake_mnist(TRAIN_PER_CLASS, seed)
    x_test, y_test = fake_mnist(TEST_PER_CLASS, seed + 1)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)
