#!/usr/bin/env bash
# Rehearses the GPU machine's run on this CPU: the command tools/device_carry.sh prints,
# in a Python 3.12 environment like the device image's (jax 0.11.2, numpy 2.5.2 and the
# other packages Keras needs that the image has; no TensorFlow), with the carried wheels
# installed with --target as there. Only the sizes change: the quick budget's 10k videos,
# 2 workers, the device flagfile cut to 2 x 50 steps, 6 minutes. It checks the software,
# not the speed: pass a pretrained quick backbone (pretraining under JAX on 2 CPU cores
# takes tens of minutes), e.g.
#   bash tools/device_carry.sh
#   python -m train.pretrain --num_filters=32 --num_images=60000 --epochs=2 \
#       --lr_schedule=cosine --learning_rate=2e-3 --output=runs/bb/backbone32_60000x2_cosine0.002.weights.h5
#   BACKBONE=runs/bb/backbone32_60000x2_cosine0.002.weights.h5 bash tools/device_rehearse.sh
# It rehearses the committed HEAD (a clone), not uncommitted edits: commit first.
# PYTHON312 names the interpreter (default: pyenv's 3.12). Results: /tmp/device-rehearsal/out.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .device/whl ] || { echo "run tools/device_carry.sh first" >&2; exit 2; }
PY=${PYTHON312:-$(ls -d "$(pyenv root 2>/dev/null || echo /root/.pyenv)"/versions/3.12*/bin/python3 2>/dev/null | tail -1)}
[ -x "$PY" ] || { echo "no Python 3.12 found; set PYTHON312" >&2; exit 2; }
base=/tmp/device-rehearsal
rm -rf "$base/tree" "$base/out" /tmp/site /tmp/t && mkdir -p "$base/out" /tmp/t
if [ ! -x "$base/venv/bin/python3" ]; then
    "$PY" -m venv "$base/venv"
    "$base/venv/bin/pip" install -q jax==0.11.2 numpy==2.5.2 absl-py h5py ml-dtypes rich \
        packaging typing_extensions matplotlib opencv-python-headless
fi
git clone -q . "$base/tree" && cp -r .device "$base/tree/"
[ -n "${BACKBONE:-}" ] && cp "$BACKBONE" /tmp/t/
# the command device_carry.sh prints, resized for 2 cores
cmd=$(grep '^python3 -m pip install' tools/device_carry.sh | sed -e 's/--budget=device/--budget=quick/' \
    -e 's/--workers=16/--workers=2/' -e "s/--time_budget_minutes=[0-9.]*/--time_budget_minutes=6/" \
    -e 's#--work_dir=/tmp/t#--work_dir=/tmp/t --extra_flags=--flagfile=configs/budget_device.flags,--steps_per_epoch=50,--epochs=2,--val_videos=200,--batch_size=16#')
case "$cmd" in
    *--budget=quick*--workers=2*--time_budget_minutes=6*--extra_flags=*) ;;
    *) echo "could not resize the device command (has it changed?): $cmd" >&2; exit 2 ;;
esac
cd "$base/tree"
# shellcheck disable=SC1091
source "$base/venv/bin/activate"
export OUT="$base/out"
start=$(date +%s)
bash -c "$cmd"
echo "rehearsal: $(( $(date +%s) - start )) s; $OUT:"
ls -la "$OUT"
tar tzf "$OUT/results.tgz" | grep -c result.json | sed 's/^/rows with result.json: /'
head -1 "$OUT/log.txt"
tail -5 "$OUT/log.txt"
