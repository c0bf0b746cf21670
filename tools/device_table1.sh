#!/usr/bin/env bash
# Table 1's device budget on the GPU machine (JAX, no TensorFlow), each row trained for all
# its planned steps, across as many calls as it takes. Run it there, from the repo root,
# with .device carried (made by tools/device_carry.sh):
#
#   bash tools/device_table1.sh [ROWS] [MINUTES]
#
# ROWS: comma-separated, in order (default rstg_all_temp,rstg_time_only,rstg_space_only).
# MINUTES: the time budget for data and rows (default 8.6, for a 10-minute call).
#
# The work dir starts as a copy of $RESULTS_DIR (default experiments/table1_device3): the
# budget's pretrained backbone, the rows finished by earlier calls (config.json,
# result.json, log.csv: reported, not trained again) and state.tgz, the rows an earlier
# call paused. python -m train.table --whole_rows then gives each row in turn all the time
# left; a row that reaches the limit pauses between epochs, untested (--whole_rows).
# Results under $OUT:
#   log.txt      versions, each row's per-epoch val top-1, val sync pair, learning rate,
#                and python -m train.curves' table of the rows (when each left sync-blind);
#   results.tgz  table.md, table.png and each finished row's config.json, result.json,
#                log.csv: unpack into $RESULTS_DIR and commit;
#   state.tgz    the paused rows (their backup and best.keras, a few MB): put it at
#                $RESULTS_DIR/state.tgz and the next call resumes them.
# Environment: BUDGET (device), WORKERS (16), EXTRA_FLAGS (--extra_flags of the table),
# RESULTS_DIR, WORK_DIR (/tmp/t). tools/device_rehearse.sh runs it on a CPU.
set -uo pipefail
rows=${1:-rstg_all_temp,rstg_time_only,rstg_space_only}
minutes=${2:-8.6}
results=${RESULTS_DIR:-experiments/table1_device3}
work=${WORK_DIR:-/tmp/t}
: "${OUT:?OUT must name the folder for the results}"
OUT=$(cd "$OUT" && pwd) || exit 2      # absolute: the packing below runs in the work dir
python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .device/whl/*.whl || exit 2
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
rm -rf "$work" && mkdir -p "$work" && cp -r "$results/." "$work/" || exit 2
if [ -f "$work/state.tgz" ]; then      # never over a row that has finished since
    tar xzf "$work/state.tgz" -C "$work" --skip-old-files && rm "$work/state.tgz" || exit 2
fi
outer=$(python3 -c "print(int(60 * $minutes) + 45)")   # the table ends itself before this
{
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"
    python3 -c 'import jax, keras; print("jax", jax.__version__, "keras", keras.__version__, jax.devices())'
    timeout -s INT -k 20 "$outer" python3 -m train.table --in_memory --budget="${BUDGET:-device}" \
        --digits=3 --mnist=.device/mnist.npz --workers="${WORKERS:-16}" --rows="$rows" \
        --whole_rows --time_budget_minutes="$minutes" --work_dir="$work" \
        ${EXTRA_FLAGS:+--extra_flags="$EXTRA_FLAGS"}
    echo "train.table exit code: $?"
} 2>&1 | tr '\r' '\n' | sed 's/\x1b\[[0-9;]*m//g' \
    | grep --line-buffered -v '^ *[0-9]*/[0-9]* ' > "$OUT/log.txt"
curves=()      # every row's curve on one step axis: when each left sync-blind
for dir in "$work"/*/; do
    if [ -f "$dir/log.csv" ]; then curves+=("--run=${dir%/}"); fi
done
if [ ${#curves[@]} -gt 0 ]; then
    python3 -m train.curves --skip_unplaceable "${curves[@]}" >> "$OUT/log.txt" 2>&1 \
        || echo "train.curves exit code: $?" >> "$OUT/log.txt"
fi
cd "$work" || exit 2
paused=()       # rows with a backup and no result.json: paused, resumed from state.tgz
for dir in */; do
    dir=${dir%/}
    if [ -d "$dir/backup" ] && [ ! -f "$dir/result.json" ]; then paused+=("$dir"); fi
done
tar czf "$OUT/results.tgz" --exclude='*.keras' --exclude='*.h5' --exclude=backup \
    --exclude=tensorboard --exclude=state.tgz ${paused[@]+"${paused[@]/#/--exclude=./}"} .
if [ ${#paused[@]} -gt 0 ]; then
    tar czf "$OUT/state.tgz" --exclude=last.keras --exclude=tensorboard "${paused[@]}"
    echo "paused rows, in state.tgz: ${paused[*]}" >> "$OUT/log.txt"
fi
tail -c 6000 "$OUT/log.txt"
