"""Export a trained model for TF Serving: ``python -m export``.

  python -m export --model_dir=runs/all_temp --export_base=serving --model_name=rstg

Writes serving/rstg/<next version>/ (SavedModel with serving_default, stream_init and
stream_step signatures, warmup requests) plus serving/models.config and
serving/batching_parameters.txt. Serve it with the stock image (see docs/serving.md).
"""

import json
import os

from absl import flags

from rstg_tf.config import WEIGHT_DTYPES
from rstg_tf import cli

flags.DEFINE_string("model_dir", None, "A training run's directory (config.json + "
                    "best.keras / last.keras).")
flags.DEFINE_enum("checkpoint", "best", ["best", "last"], "Which checkpoint to export.")
flags.DEFINE_string("export_base", None, "TF Serving model base directory.")
flags.DEFINE_string("model_name", "rstg", "Model name (a directory under --export_base).")
flags.DEFINE_integer("version", None, "Version number (default: the next free one).",
                     lower_bound=1)
flags.DEFINE_string("label_file", None, "Class names, one per line, in class order "
                    "(adds a class_names output).")
flags.DEFINE_boolean("warmup", True, "Write assets.extra/tf_serving_warmup_requests.")
flags.DEFINE_enum("weights_dtype", "float32", list(WEIGHT_DTYPES),
                  "Store the weights, and run the graph, in this dtype: bfloat16 for CPUs "
                  "with AVX512_BF16 (half the size, a faster stream_step), float16 for GPUs. "
                  "Inputs, outputs and the streaming state keep their dtypes.")
flags.mark_flags_as_required(["model_dir", "export_base"])


def read_labels(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"label file {path} does not exist.")
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def main(argv):
    del argv
    f = flags.FLAGS
    from rstg_tf.models import ModelConfig
    from rstg_tf.serving.saved_model import export_saved_model
    from rstg_tf.training.checkpoints import load_trained_model

    config_path = os.path.join(f.model_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{config_path} does not exist; --model_dir must be a "
                                "directory written by python -m train.")
    with open(config_path) as fh:
        config = ModelConfig.from_dict(json.load(fh)["model"])
    model = load_trained_model(f.model_dir, f.checkpoint)
    labels = read_labels(f.label_file) if f.label_file else None
    path = export_saved_model(model, config, f.export_base, f.model_name, f.version,
                              class_names=labels, warmup=f.warmup,
                              weights_dtype=f.weights_dtype)
    print(f"exported {path}")
    print(f"serve: docker run --gpus all -p 8500:8500 -p 8501:8501 "
          f"-v {os.path.abspath(f.export_base)}:/models tensorflow/serving:latest-gpu "
          f"--model_config_file=/models/models.config --enable_batching "
          f"--batching_parameters_file=/models/batching_parameters.txt")


if __name__ == "__main__":
    cli.run(main)
