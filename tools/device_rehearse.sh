#!/usr/bin/env bash
# Rehearses the GPU machine's Table 1 calls (tools/device_table1.sh) on this CPU, in a
# Python 3.12 environment like the device image's (jax 0.11.2, numpy 2.5.2 and the other
# packages Keras needs that the image has; no TensorFlow), with the carried wheels
# installed with --target as there. Two calls of two rows, as two leases would make them:
#   1. the rows side by side (JOBS=2: the videos made once into a cache,
#      then a process per row), with a time budget too short for them: each trains an
#      epoch and pauses, untested, and their state comes back as state.tgz;
#   2. that state.tgz put back into the results dir, the rows in turn (the default): each
#      resumes, finishes and is tested; results.tgz holds their result.json and table.md.
# Only the sizes change: the quick budget's 10k videos, 2 workers, the device flagfile cut
# to 2 x 60 steps of 16 (an epoch long enough that a 1-minute call pauses after one). It
# checks the software, not the speed: pass a pretrained quick backbone (pretraining under
# JAX on 2 CPU cores takes tens of minutes), e.g.
#   bash tools/device_carry.sh
#   python -m train.pretrain --num_filters=32 --num_images=60000 --epochs=2 \
#       --lr_schedule=cosine --learning_rate=2e-3 --output=runs/bb/backbone32_60000x2_cosine0.002.weights.h5
#   BACKBONE=runs/bb/backbone32_60000x2_cosine0.002.weights.h5 bash tools/device_rehearse.sh
# It rehearses the committed HEAD (a clone), not uncommitted edits: commit first.
# PYTHON312 names the interpreter (default: pyenv's 3.12). Results: /tmp/device-rehearsal.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .device/whl ] || { echo "run tools/device_carry.sh first" >&2; exit 2; }
[ -f "${BACKBONE:-}" ] || { echo "BACKBONE must name a pretrained quick backbone" >&2; exit 2; }
PY=${PYTHON312:-$(ls -d "$(pyenv root 2>/dev/null || echo /root/.pyenv)"/versions/3.12*/bin/python3 2>/dev/null | tail -1)}
[ -x "$PY" ] || { echo "no Python 3.12 found; set PYTHON312" >&2; exit 2; }
base=/tmp/device-rehearsal
rm -rf "$base/tree" "$base/out1" "$base/out2" "$base/results" "$base/videos" /tmp/site
mkdir -p "$base/out1" "$base/out2" "$base/results"
if [ ! -x "$base/venv/bin/python3" ]; then
    "$PY" -m venv "$base/venv"
    "$base/venv/bin/pip" install -q jax==0.11.2 numpy==2.5.2 absl-py h5py ml-dtypes rich \
        packaging typing_extensions matplotlib opencv-python-headless
fi
git clone -q . "$base/tree" && cp -r .device "$base/tree/"
cp "$BACKBONE" "$base/results/"
cd "$base/tree"
# shellcheck disable=SC1091
source "$base/venv/bin/activate"
export BUDGET=quick WORKERS=2 RESULTS_DIR="$base/results" WORK_DIR="$base/t"
export EXTRA_FLAGS=--flagfile=configs/budget_device.flags,--epochs=2,--steps_per_epoch=60,--val_videos=200,--batch_size=16,--steps_per_execution=5
start=$(date +%s)
rows=rstg_all_temp,rstg_time_only
OUT="$base/out1" JOBS=2 CACHE_DIR="$base/videos" bash tools/device_table1.sh "$rows" 1.5
# (listings read whole: grep -q on a pipe would SIGPIPE tar, a failure under pipefail)
state=$(tar tzf "$base/out1/state.tgz" 2>/dev/null) \
    || { echo "rehearsal: call 1 paused no row (no state.tgz)" >&2; exit 1; }
for row in ${rows//,/ }; do
    grep -q "^$row/backup/" <<< "$state" \
        || { echo "rehearsal: call 1 did not pause $row" >&2; exit 1; }
    grep -q "^| $row | .* | paused |" "$base/out1/log.txt" \
        || { echo "rehearsal: call 1's table.md does not show $row paused" >&2; exit 1; }
done
if grep -q result.json <(tar tzf "$base/out1/results.tgz"); then
    echo "rehearsal: call 1 tested a paused row" >&2; exit 1
fi
cp "$base/out1/state.tgz" "$base/results/"
OUT="$base/out2" bash tools/device_table1.sh "$rows" 8      # the default: in turn
[ ! -f "$base/out2/state.tgz" ] || { echo "rehearsal: call 2 left a paused row" >&2; exit 1; }
for row in ${rows//,/ }; do
    grep -q "$row/result.json" <(tar tzf "$base/out2/results.tgz") \
        || { echo "rehearsal: call 2 did not finish $row" >&2; exit 1; }
    grep -q "resumed_from_epoch\": 1" <(tar xzf "$base/out2/results.tgz" -O "./$row/result.json") \
        || { echo "rehearsal: call 2 did not resume $row from call 1's epoch" >&2; exit 1; }
    grep -q "^| $row | 16 | 60 | 120 (2 of 2) |" "$base/out2/log.txt" \
        || { echo "rehearsal: call 2's log.txt has no train.curves line of $row" >&2; exit 1; }
done
echo "rehearsal passed: $(( $(date +%s) - start )) s for both calls; $base/out1, $base/out2"
head -1 "$base/out2/log.txt"
