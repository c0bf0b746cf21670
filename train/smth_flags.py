"""The flags of ``python -m train.smth`` and the VideoTrainConfig they make."""

from typing import TYPE_CHECKING

from absl import flags

from train import train_flags

if TYPE_CHECKING:
    from rstg_tf.training.video_trainer import VideoTrainConfig

STAGES = ["res2", "res3", "res4", "res5"]


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    flags.DEFINE_string("data_dir", None, "Converted shards (python -m train.convert_smth) "
                        "with the train split and the --val_split.", flag_values=fv)
    flags.DEFINE_string("model_dir", None, "Where checkpoints, logs and config.json go.",
                        flag_values=fv)
    flags.DEFINE_string("val_split", "holdout", "Split that chooses checkpoints and drives "
                        "the schedule (held out of the training videos).", flag_values=fv)
    # Model (the reference's config_smt_*.yaml).
    flags.DEFINE_enum("backbone", "i3d", ["c2d", "i3d"], "ResNet-50 C2D or I3D.",
                      flag_values=fv)
    flags.DEFINE_list("rstg_stages", [], "RSTG-to-map after these stages (res2, res3, res4).",
                      flag_values=fv)
    flags.DEFINE_boolean("rstg_final", False, "RSTG-to-vec on the res5 map.", flag_values=fv)
    flags.DEFINE_enum("combination", "plus", ["plus", "serial"], "RSTG-to-vec with the pooled "
                      "features: added, or instead of them.", flag_values=fv)
    flags.DEFINE_list("non_local_stages", [], "Non-local blocks after every other bottleneck "
                      "of these stages (the Non-local baseline: res3,res4).", flag_values=fv)
    flags.DEFINE_integer("width", 64, "ResNet base width (64: ResNet-50).", lower_bound=4,
                         flag_values=fv)
    flags.DEFINE_integer("num_classes", 174, "Classes.", lower_bound=2, flag_values=fv)
    flags.DEFINE_integer("num_frames", 32, "Frames sampled per clip.", lower_bound=2,
                         flag_values=fv)
    flags.DEFINE_integer("crop_size", 224, "Training / centre crop side.", lower_bound=16,
                         flag_values=fv)
    flags.DEFINE_integer("short_side", 256, "Frames are resized to this shorter side.",
                         lower_bound=16, flag_values=fv)
    flags.DEFINE_integer("dense_crops", 11, "Dense evaluation: square crops across the width.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_float("dropout", 0.3, "Classifier dropout.", lower_bound=0.0,
                       upper_bound=0.99, flag_values=fv)
    flags.DEFINE_boolean("frozen_bn", True, "Backbone batch norms on their moving statistics "
                         "(the reference's, with 2-clip batches).", flag_values=fv)
    flags.DEFINE_enum("final_norm", "layer", ["layer", "batch"], "Norm (zero-initialised "
                      "scale) on each graph output before it joins the backbone.",
                      flag_values=fv)
    train_flags.define_rstg_flags(fv, gather="dot", norm="layer", layer_norm_scope="graph",
                                  scalewise_update=True)
    train_flags.define_training_flags(fv)


def config_from_flags(f) -> "VideoTrainConfig":
    from rstg_tf.data.video_clips import ClipConfig
    from rstg_tf.models.video_resnet import VideoModelConfig
    from rstg_tf.training.video_trainer import VideoTrainConfig

    if not f.data_dir or not f.model_dir:
        raise ValueError("--data_dir and --model_dir are required.")
    rstg = train_flags.rstg_from_flags(f, input_batch_norm=False, readout="map",
                                       frame_size=(f.crop_size, f.crop_size))
    model = VideoModelConfig(
        backbone=f.backbone, num_classes=f.num_classes, num_frames=f.num_frames,
        frame_size=(f.crop_size, f.crop_size), width=f.width,
        rstg_stages=tuple(f.rstg_stages), rstg_final=f.rstg_final,
        combination=f.combination, non_local_stages=tuple(f.non_local_stages),
        dropout=f.dropout, frozen_bn=f.frozen_bn, rstg=rstg, final_norm=f.final_norm)
    clip = ClipConfig(num_frames=f.num_frames, short_side=f.short_side,
                      crop_size=f.crop_size, dense_crops=f.dense_crops)
    return VideoTrainConfig(model=model, clip=clip, val_split=f.val_split,
                            **train_flags.training_fields(f))
