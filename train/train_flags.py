"""The flags of ``python -m train`` and the TrainConfig they make (shared with
``python -m train.table --in_memory``, which parses rows' flagfiles without TensorFlow)."""

from typing import TYPE_CHECKING

from absl import flags

from rstg_tf.config import (  # light: no Keras import
    ADJACENCIES, GATHERS, LAYER_NORM_SCOPES, LR_SCHEDULES, LSTM_INITS, MAX_GRAD_NORM_BATCHES,
    MODEL_NAMES, NORMS, SCHEDULES)

if TYPE_CHECKING:
    from rstg_tf.training.config import TrainConfig


def define_flags(fv: flags.FlagValues = flags.FLAGS, required: bool = True) -> None:
    """Defines every flag of ``python -m train`` on ``fv`` (a row's flagfile can be parsed
    into a fresh ``flags.FlagValues``)."""
    flags.DEFINE_string("data_dir", None, "Shard directory with train and test splits "
                        "(python -m train.make_syncmnist).", flag_values=fv)
    flags.DEFINE_string("model_dir", None, "Where checkpoints, logs and config.json go.",
                        flag_values=fv)
    # Model.
    flags.DEFINE_enum("model", "rstg", MODEL_NAMES, "Clip head on the backbone features.",
                      flag_values=fv)
    flags.DEFINE_integer("num_classes", 46, "Classes.", lower_bound=2, flag_values=fv)
    flags.DEFINE_integer("num_frames", 10, "Frames per clip.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("num_filters", 512, "simple_c2d backbone width.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("hidden", 512, "Baselines: LSTM units / 3D ResNet width x 2.",
                         lower_bound=2, flag_values=fv)
    flags.DEFINE_bool("feature_batch_norm", True, "Baselines: batch norm on the backbone "
                      "features before the head (RSTG has its own input batch norm).",
                      flag_values=fv)
    flags.DEFINE_float("dropout", 0.0, "Classifier dropout.", lower_bound=0.0, upper_bound=0.99,
                       flag_values=fv)
    flags.DEFINE_enum("readout", "mean_time", ["mean_time", "last_step"], "RSTG-to-vec read-out.",
                      flag_values=fv)
    define_rstg_flags(fv)
    define_training_flags(fv)
    if required:
        flags.mark_flags_as_required(["data_dir", "model_dir"], flag_values=fv)


def rstg_from_flags(f, **fields):
    """The RSTGConfig of the RSTG flags (plus ``fields``)."""
    from rstg_tf.config import RSTGConfig

    return RSTGConfig(node_dim=f.node_dim, message_dim=f.message_dim,
                      num_iterations=f.num_iterations, num_scales=f.num_scales,
                      gather=f.gather, adjacency=f.adjacency, norm=f.norm,
                      position_maps=f.position_maps, scalewise_update=f.scalewise_update,
                      update_layers=f.update_layers, schedule=f.schedule,
                      lstm_init=f.lstm_init, layer_norm_scope=f.layer_norm_scope, **fields)


def training_fields(f) -> dict:
    """TrainConfig's fields of the training flags (all but the model)."""
    return dict(
        data_dir=f.data_dir, model_dir=f.model_dir, batch_size=f.batch_size,
        epochs=f.epochs, steps_per_epoch=f.steps_per_epoch, val_videos=f.val_videos,
        optimizer=f.optimizer, learning_rate=f.learning_rate, momentum=f.momentum,
        clip_grad_norm=f.clip_grad_norm, grad_norm_batches=f.grad_norm_batches,
        plateau_patience=f.plateau_patience, lr_schedule=f.lr_schedule,
        warmup_steps=f.warmup_steps, min_lr=f.min_lr, cosine_fraction=f.cosine_fraction,
        plateau_patience_steps=f.plateau_patience_steps, backbone_weights=f.backbone_weights,
        freeze_backbone=f.freeze_backbone, mixed_precision=f.mixed_precision,
        jit_compile=f.jit_compile, steps_per_execution=f.steps_per_execution,
        strategy=f.strategy, on_corrupt=f.on_corrupt,
        seed=f.seed, verbose=f.verbose, max_train_minutes=f.max_train_minutes,
        pause_at_time_limit=f.pause_at_time_limit)


def config_from_flags(f) -> "TrainConfig":
    from rstg_tf.config import ModelConfig
    from rstg_tf.training.config import TrainConfig

    model = ModelConfig(name=f.model, num_classes=f.num_classes, num_frames=f.num_frames,
                        num_filters=f.num_filters, dropout=f.dropout, hidden=f.hidden,
                        feature_batch_norm=f.feature_batch_norm,
                        rstg=rstg_from_flags(f, readout=f.readout))
    return TrainConfig(model=model, **training_fields(f))


def define_rstg_flags(fv: flags.FlagValues = flags.FLAGS, **defaults) -> None:
    """The RSTG block's flags; ``defaults`` overrides gather, norm, layer_norm_scope and
    scalewise_update (Something-Something's reference config differs from SyncMNIST's)."""
    flags.DEFINE_enum("schedule", "all_temp", SCHEDULES, "RSTG schedule (Table 1 rows).",
                      flag_values=fv)
    flags.DEFINE_integer("node_dim", 512, "RSTG node width.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("message_dim", 512, "RSTG message width.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("num_iterations", 3, "RSTG space-time iterations K.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("num_scales", 3, "RSTG grid scales.", lower_bound=1, flag_values=fv)
    flags.DEFINE_enum("gather", defaults.get("gather", "simple"), GATHERS, "RSTG gather.",
                      flag_values=fv)
    flags.DEFINE_enum("adjacency", "soft", ADJACENCIES, "RSTG adjacency use.", flag_values=fv)
    flags.DEFINE_enum("norm", defaults.get("norm", "none"), NORMS, "RSTG normalisation.",
                      flag_values=fv)
    flags.DEFINE_enum("layer_norm_scope", defaults.get("layer_norm_scope", "node"),
                      LAYER_NORM_SCOPES, "With --norm=layer: normalise each node on its own "
                      "(online mode possible) or, as the reference, a frame's whole graph and "
                      "the clip's input nodes and output map.", flag_values=fv)
    flags.DEFINE_boolean("position_maps", False, "RSTG positional model (Gaussian maps).",
                         flag_values=fv)
    flags.DEFINE_boolean("scalewise_update", defaults.get("scalewise_update", False),
                         "One update MLP per scale.", flag_values=fv)
    flags.DEFINE_enum("lstm_init", "keras", LSTM_INITS, "Node LSTM initialisation: Keras' "
                      "(orthogonal recurrent kernel, forget bias 1) or the reference's TF1 "
                      "CudnnLSTM's (Glorot per gate, zero biases).", flag_values=fv)
    flags.DEFINE_integer("update_layers", 2, "Update MLP depth.", lower_bound=1, flag_values=fv)


def define_training_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """How a run trains: batch, epochs, optimizer, schedule, precision, distribution."""
    flags.DEFINE_integer("batch_size", 8, "Clips per replica and step.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("epochs", 10, "Epochs.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (default: one pass).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("val_videos", None, "Validate on the first N videos of the val split "
                         "(default all). The test split is never read while training.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_enum("optimizer", "sgd", ["sgd", "adam"], "SGD is the reference's (Nesterov).",
                      flag_values=fv)
    flags.DEFINE_float("learning_rate", 1e-4, "Peak learning rate (after any warm-up).",
                       flag_values=fv)
    flags.DEFINE_float("momentum", 0.9, "SGD momentum, in [0, 1).", flag_values=fv)
    flags.DEFINE_float("clip_grad_norm", None, "Scale the gradients together so that their "
                       "global L2 norm is at most this (> 0; default: no clipping).",
                       flag_values=fv)
    flags.DEFINE_integer("grad_norm_batches", 0, "Log grad_norm and grad_norm_max (the "
                         "training loss' gradient norm: median and largest over this many "
                         f"fixed training batches, 0..{MAX_GRAD_NORM_BATCHES}) after every "
                         "epoch; 0: off. Needs --strategy=default.",
                         lower_bound=0, upper_bound=MAX_GRAD_NORM_BATCHES, flag_values=fv)
    flags.DEFINE_enum("lr_schedule", "plateau", list(LR_SCHEDULES), "plateau: /10 when the "
                      "validation loss stalls (the reference's); constant; cosine: constant, "
                      "then a cosine to --min_lr over the last --cosine_fraction of the run.",
                      flag_values=fv)
    flags.DEFINE_integer("warmup_steps", 0, "Steps of linear warm-up to --learning_rate.",
                         flag_values=fv)
    flags.DEFINE_float("min_lr", 0.0, "Floor of the plateau cuts and the cosine's end; below "
                       "--learning_rate.", flag_values=fv)
    flags.DEFINE_float("cosine_fraction", 1.0, "cosine: the share of the run (after warm-up) "
                       "spent decaying; the rest holds --learning_rate.", flag_values=fv)
    flags.DEFINE_integer("plateau_patience", 2, "plateau: epochs without validation-loss "
                         "progress before the rate is divided by 10.", flag_values=fv)
    flags.DEFINE_integer("plateau_patience_steps", None, "plateau: the patience in steps "
                         "instead (rounded up to whole epochs).", flag_values=fv)
    flags.DEFINE_string("backbone_weights", None,
                        "Pretrained backbone (python -m train.pretrain).", flag_values=fv)
    flags.DEFINE_boolean("freeze_backbone", False, "Keep the pretrained backbone fixed.",
                         flag_values=fv)
    flags.DEFINE_boolean("mixed_precision", False, "mixed_float16 compute.", flag_values=fv)
    flags.DEFINE_boolean("jit_compile", None, "XLA-compile the train step (default: on under "
                         "JAX, which otherwise runs the step op by op; off under TensorFlow).",
                         flag_values=fv)
    flags.DEFINE_integer("steps_per_execution", 1, "Train steps per compiled call; callbacks "
                         "and the progress bar run between calls (more: less per-step "
                         "overhead for small models on a GPU).", lower_bound=1, flag_values=fv)
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                      "Distribution: one device, all local devices, or workers from TF_CONFIG.",
                      flag_values=fv)
    flags.DEFINE_enum("on_corrupt", "raise", ["raise", "skip"], "A corrupt shard stops training, "
                      "or its unreadable records are skipped and counted.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("verbose", 1, "Keras verbosity: 0 silent, 1 progress bar, 2 a line per "
                         "epoch.", lower_bound=0, upper_bound=2, flag_values=fv)
    flags.DEFINE_float("max_train_minutes", None, "Stop training after about this many minutes "
                       "(the epoch that would pass it is not begun; a run past it stops "
                       "after its current batch). Run again to continue.", flag_values=fv)
    flags.DEFINE_boolean("pause_at_time_limit", False, "With --max_train_minutes: the limit "
                         "pauses the run between epochs, the learning-rate schedule keeps "
                         "its planned epochs x steps_per_epoch (a cosine is not re-aimed at "
                         "the limit), and the run counts as unfinished until its last epoch; "
                         "the same command resumes it.", flag_values=fv)
