"""rstg-tf: Recurrent Space-time Graph neural networks (NeurIPS 2019) in TF2 / Keras 3.

Top-level names load lazily, so NumPy-only parts (the SyncMNIST generator) import without
pulling in Keras and TensorFlow. Saved models still load after a plain ``import rstg_tf``:
the modules that register this package's Keras classes are imported as soon as Keras is
(at once if it already is), so ``keras.saving.load_model("best.keras")`` finds them.
"""

import importlib
import importlib.abc
import importlib.util
import sys

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


# Modules whose import registers every Keras class a saved model of this project can hold.
_REGISTERING_MODULES = ("rstg_tf.models", "rstg_tf.models.video_resnet")


def _register_keras_objects():
    for module in _REGISTERING_MODULES:
        importlib.import_module(module)


class _ThenRegister(importlib.abc.Loader):
    """Keras' own loader, then ``_register_keras_objects`` once Keras is complete."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _register_keras_objects()

    def __getattr__(self, name):          # resources, source, ...: Keras' loader's
        return getattr(self._loader, name)


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """A one-shot import hook: the first import of ``keras`` also registers our classes."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenRegister(spec.loader)
        return spec


if "keras" in sys.modules:
    _register_keras_objects()
elif not any(isinstance(f, _RegisterAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())

