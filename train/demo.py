"""A forward/backward demo of the RSTG block: ``python -m train.demo``.

Builds the reference SyncMNIST RSTG block (14 nodes, 512 dims, K=3, all_temp) on random
backbone features of SyncMNIST's shape (10 frames of 6x6x512), attaches a 46-way
classifier and fits a few steps on random labels, printing shapes and the loss.
"""

from absl import app, flags
import numpy as np


flags.DEFINE_integer("batch_size", 4, "Clips per batch.")
flags.DEFINE_integer("frames", 10, "Frames per clip.")
flags.DEFINE_integer("steps", 5, "Training steps.")
flags.DEFINE_enum("preset", "syncmnist_positional", ["syncmnist", "syncmnist_positional"],
                  "RSTG preset.")
flags.DEFINE_integer("seed", 0, "Random seed.")


def main(argv):
    del argv
    import keras
    from rstg_tf import RSTG, preset

    f = flags.FLAGS
    keras.utils.set_random_seed(f.seed)
    config = preset(f.preset)
    features = keras.Input((f.frames, 6, 6, 512), name="backbone_features")
    pooled = RSTG(config, name="rstg")(features)
    logits = keras.layers.Dense(46, name="classifier")(pooled)
    model = keras.Model(features, logits)
    model.compile(
        optimizer=keras.optimizers.SGD(1e-4, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(f.seed)
    x = rng.uniform(0, 1, (f.batch_size * f.steps, f.frames, 6, 6, 512)).astype("float32")
    y = rng.integers(0, 46, (f.batch_size * f.steps,))
    block = model.get_layer("rstg")
    print(f"graph: {block.graph.num_nodes} nodes, {block.graph.num_edges} edges, "
          f"scales {block.graph.grids}")
    print(f"input {x.shape} -> RSTG-to-vec {tuple(pooled.shape)} -> logits {tuple(logits.shape)}")
    print(f"parameters: {model.count_params():,}")
    history = model.fit(x, y, batch_size=f.batch_size, epochs=2, verbose=1)
    losses = history.history["loss"]
    print(f"loss: {losses[0]:.4f} -> {losses[-1]:.4f} (chance: {np.log(46):.4f})")


if __name__ == "__main__":
    app.run(main)
