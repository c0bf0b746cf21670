"""Writing ``<export_base>/<model_name>/<version>/`` for TF Serving, atomically.

Beside the SavedModel: ``assets.extra/tf_serving_warmup_requests`` (PredictionLog records,
replayed by TF Serving at load time so the first real request is not slow) and, next to the
export base, ``models.config`` and ``batching_parameters.txt`` for
``tensorflow_model_server --model_config_file=... --enable_batching
--batching_parameters_file=...``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from rstg_tf.data.atomic import atomic_write_text
from rstg_tf.models import ModelConfig, with_weights_dtype
from rstg_tf.serving.module import ServingModule

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
BATCHING_PARAMETERS = """max_batch_size { value: 32 }
batch_timeout_micros { value: 2000 }
max_enqueued_batches { value: 64 }
num_batch_threads { value: 4 }
pad_variable_length_inputs: false
"""


def versions(model_root: str) -> list:
    """Numeric version directories under ``<export_base>/<model_name>``."""
    if not os.path.isdir(model_root):
        return []
    return sorted(int(d) for d in os.listdir(model_root) if d.isdigit())


def warmup_records(module: ServingModule, model_name: str, batch_sizes=(1, 4)) -> list:
    """Serialized ``PredictionLog`` records for the clip signature (and the stream pair)."""
    try:
        from tensorflow_serving.apis import (model_pb2, predict_pb2, prediction_log_pb2)
    except ImportError as e:
        raise ValueError("warmup records need tensorflow-serving-api: pip install "
                         "'tensorflow-serving-api==2.21.*' (or the [serving] extra).") from e
    c = module.config
    records = []

    def add(signature, inputs):
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        log = prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request))
        records.append(log.SerializeToString())

    for batch in batch_sizes:
        add("serving_default", {"video": np.zeros(
            (batch, c.num_frames, *c.frame_size, c.channels), np.uint8)})
    if module.streams:
        add("stream_init", {"batch": np.int32(1)})
        state = {k: np.zeros((1, *v.shape[1:]), np.float32)
                 for k, v in module.state_specs().items()}
        add("stream_step", {"frame": np.zeros((1, *c.frame_size, c.channels), np.uint8),
                            **state})
    return records


def write_server_configs(export_base: str, model_name: str, container_base: str = "/models"):
    """``models.config`` and ``batching_parameters.txt`` next to the export base."""
    config = (f'model_config_list {{\n  config {{\n    name: "{model_name}"\n'
              f'    base_path: "{container_base}/{model_name}"\n'
              f'    model_platform: "tensorflow"\n  }}\n}}\n')
    atomic_write_text(os.path.join(export_base, "models.config"), config)
    atomic_write_text(os.path.join(export_base, "batching_parameters.txt"),
                      BATCHING_PARAMETERS)


def export_saved_model(model: keras.Model, config: ModelConfig, export_base: str,
                       model_name: str = "rstg", version: Optional[int] = None,
                       class_names: Optional[Sequence[str]] = None,
                       warmup: bool = True, weights_dtype: str = "float32") -> str:
    """Exports ``model`` as ``<export_base>/<model_name>/<version>``; returns that path.

    The version defaults to the next free number; an existing version is never replaced.
    The SavedModel is written under a temporary name in the same directory and renamed.
    ``weights_dtype`` ("float32", "bfloat16", "float16") stores the weights, and runs the
    graph, in that dtype (``rstg_tf.models.with_weights_dtype``); the signatures' inputs
    and outputs (and the streaming state) keep their dtypes.
    """
    model = with_weights_dtype(model, config, weights_dtype)
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise ValueError(f"model_name must be a plain name; got {model_name!r}.")
    root = os.path.join(export_base, model_name)
    os.makedirs(root, exist_ok=True)
    if version is None:
        version = (versions(root) or [0])[-1] + 1
    if version < 1:
        raise ValueError(f"version must be >= 1; got {version}.")
    target = os.path.join(root, str(version))
    if os.path.exists(target):
        raise FileExistsError(f"{target} exists; versions are never overwritten (pick "
                              "another --version or leave it out for the next free one).")
    module = ServingModule(model, config, class_names=class_names)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=root)
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        if warmup:
            path = os.path.join(tmp, WARMUP_FILE)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with tf.io.TFRecordWriter(path) as writer:
                for record in warmup_records(module, model_name):
                    writer.write(record)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_server_configs(export_base, model_name)
    return target
