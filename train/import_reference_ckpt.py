"""Import an authors' TF1 checkpoint (IuliaDuta/RSTG) into a .keras model:
``python -m train.import_reference_ckpt``.

  python -m train.import_reference_ckpt --flagfile=configs/smth_i3d_rstg_res3_res4.flags \
      --checkpoint=checkpoints/model_backbone_i3d_rstg_res3_res4/model_5000.ckpt \
      --output=runs/reference/i3d_rstg_res3_res4.keras --report=runs/reference/import.json

The flagfile gives the model (the same as python -m train.smth's; --data_dir and --model_dir
are not needed). Prints what was imported and every weight kept (missing or mis-shaped in
the checkpoint, e.g. the 400-class classifier of a Kinetics backbone) and every checkpoint
variable not used; --print_table lists the name mapping without a checkpoint.
"""

import json

from absl import flags

from rstg_tf import cli
from train import smth_flags

smth_flags.define_flags()
flags.DEFINE_string("checkpoint", None, "The reference checkpoint: its prefix (model.ckpt), "
                    "one of its files, or its directory.")
flags.DEFINE_string("output", None, "Where the model goes (.keras, written atomically).")
flags.DEFINE_string("report", None, "Also write the import report here (JSON).")
flags.DEFINE_string("scope_root", None, "The model's scope in the checkpoint (default: the "
                    "one holding backbone/conv1/kernel, e.g. tower/resnet_i3d).")
flags.DEFINE_boolean("print_table", False, "Print the mapping of our weights to the "
                     "reference's variables and exit.")
FLAGS = flags.FLAGS


class _ModelFlags:
    """The flags, with the run directories that config_from_flags requires filled in: only
    the model is built here."""

    def __init__(self, values):
        self._values = values

    def __getattr__(self, name):
        value = getattr(self._values, name)
        return (value or "unused") if name in ("data_dir", "model_dir") else value


def main(argv):
    del argv
    from rstg_tf.data.atomic import atomic_path, atomic_write_text
    from rstg_tf.models.video_resnet import build_video_model
    from rstg_tf.training import reference_ckpt, reference_names

    if not FLAGS.print_table:
        if not FLAGS.checkpoint or not FLAGS.output:
            raise ValueError("--checkpoint and --output are required.")
        if not FLAGS.output.endswith(".keras"):
            raise ValueError(f"--output must end with .keras; got {FLAGS.output!r}.")
        reference_ckpt.resolve_checkpoint(FLAGS.checkpoint)   # fail before building
    model = build_video_model(smth_flags.config_from_flags(_ModelFlags(FLAGS)).model)
    if FLAGS.print_table:
        print(reference_names.format_table(reference_names.reference_table(model)))
        return
    report = reference_ckpt.import_reference(model, FLAGS.checkpoint, FLAGS.scope_root)
    print(report.summary())
    with atomic_path(FLAGS.output) as tmp:
        model.save(tmp)
    if FLAGS.report:
        atomic_write_text(FLAGS.report, json.dumps(report.to_dict(), indent=1) + "\n")
    print(f"wrote {FLAGS.output}" + (f" and {FLAGS.report}" if FLAGS.report else ""))


if __name__ == "__main__":
    cli.run(main)
