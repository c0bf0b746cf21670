"""Small shapes and a subprocess runner shared by the tests."""

import os
import subprocess
import sys

import numpy as np

from rstg_tf import RSTGConfig

B, T, H, W, C = 2, 4, 6, 6, 8
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(args, timeout=300, **env):
    """Runs ``python ARGS`` from the repo root in a fresh process (CompletedProcess).
    ``env`` adds variables to this process's environment; a ``None`` value removes one."""
    merged = {**os.environ, "PYTHONPATH": ROOT, **env}
    return subprocess.run([sys.executable, *args], cwd=ROOT, timeout=timeout,
                          env={k: v for k, v in merged.items() if v is not None},
                          capture_output=True, text=True)


def without_tensorflow(module):
    """``python`` arguments that run ``module`` as ``python -m`` would, with any import of
    TensorFlow failing: the GPU machine's image has none (use with KERAS_BACKEND=jax)."""
    code = f"""
import runpy, sys
class NoTensorFlow:
    def find_spec(self, name, path, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("tensorflow is blocked in this test")
sys.meta_path.insert(0, NoTensorFlow())
sys.argv = [{module!r}, *sys.argv[1:]]
runpy.run_module({module!r}, run_name="__main__")
"""
    return ["-c", code]


def tiny_config(**changes):
    base = dict(node_dim=8, message_dim=6, num_iterations=2)
    base.update(changes)
    return RSTGConfig(**base)


def features(seed=0, shape=(B, T, H, W, C)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def numpy(x):
    import keras
    return np.asarray(keras.ops.convert_to_numpy(x))


def open_map_gate(block):
    """The map read-out starts as identity (zero scale); give it a scale so it shows."""
    if block.map_norm is not None:
        block.map_norm.gamma.assign(np.ones(block.map_norm.gamma.shape, "float32"))
