"""rstg-tf: Recurrent Space-time Graph neural networks (NeurIPS 2019) in TF2 / Keras 3.

Top-level names load lazily, so NumPy-only parts (the SyncMNIST generator) import without
pulling in Keras and TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "PRESETS": "rstg_tf.config", "RSTGConfig": "rstg_tf.config", "preset": "rstg_tf.config",
    "Graph": "rstg_tf.graph", "area_resize_matrix": "rstg_tf.graph",
    "build_graph": "rstg_tf.graph",
    "RSTG": "rstg_tf.layers", "Gather": "rstg_tf.layers", "NodeLSTM": "rstg_tf.layers",
    "SpaceStage": "rstg_tf.layers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rstg_tf' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
