"""rstg-tf: Recurrent Space-time Graph neural networks (NeurIPS 2019) in TF2 / Keras 3.

Top-level names load lazily, so NumPy-only parts (the SyncMNIST generator) import without
pulling in Keras and TensorFlow. Saved models still load after a plain ``import rstg_tf``:
the modules that register this package's Keras classes are imported as soon as Keras is
(at once if it already is), so ``keras.saving.load_model("best.keras")`` finds them. When
Keras is first imported by one of our own modules, the registration waits until that
import is over (then at the next import statement or ``rstg_tf.<name>``), since importing
the rest in the middle of it would be circular; ``rstg_tf.register_keras_objects()`` does
it at once.
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
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        _finish_pending()
        return value
    raise AttributeError(f"module 'rstg_tf' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)


# Modules whose import registers every Keras class a saved model of this project can hold.
_REGISTERING_MODULES = ("rstg_tf.models", "rstg_tf.models.video_resnet")
_pending = []


def _importing_ours() -> bool:
    """Whether one of this package's modules is still being imported."""
    return any(getattr(getattr(module, "__spec__", None), "_initializing", False)
               for name, module in list(sys.modules.items())
               if name == "rstg_tf" or name.startswith("rstg_tf."))


def register_keras_objects():
    """Imports the modules that register every Keras class of this package (idempotent);
    the project's own loaders call it before ``keras.saving.load_model``."""
    for module in _REGISTERING_MODULES:
        importlib.import_module(module)


def _register_when_idle():
    """Registers now, or, when Keras was imported by one of our own modules (whose import
    has not finished: importing the rest now would be circular), at the next import once
    ours are done (``_RegisterWhenIdle``) or at the next lazy attribute."""
    if not _importing_ours():
        register_keras_objects()
    elif not _pending:
        _pending.append(True)
        sys.meta_path.insert(0, _RegisterWhenIdle())


def _finish_pending():
    if _pending and not _importing_ours():
        _pending.clear()
        for finder in [f for f in sys.meta_path if isinstance(f, _RegisterWhenIdle)]:
            sys.meta_path.remove(finder)
        register_keras_objects()


class _RegisterWhenIdle(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        _finish_pending()
        return None


class _ThenRegister(importlib.abc.Loader):
    """Keras' own loader, then our registration once Keras is complete."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _register_when_idle()

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
    register_keras_objects()
elif not any(isinstance(f, _RegisterAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())
