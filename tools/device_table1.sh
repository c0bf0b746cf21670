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
# call paused. Each row is trained with python -m train.table --whole_rows: all the time
# left is its, and a row that reaches the limit pauses between epochs, untested.
# JOBS (default 1) is how many rows train at once. JOBS=1: in turn, in one process, so a
# call's first row gets all the time it needs (All-temp's 40,000 steps: ~5.6 min on an
# H200). JOBS=N > 1: side by side, a process each: one --data_only run first generates
# the videos into $CACHE_DIR (default /tmp/videos), and every row process memory-maps
# them (--data_cache); each gets 0.9 / JOBS of the GPU's memory and logs to
# $OUT/rows/<row>.log, and a row waiting for a free slot starts with the time then left
# (not at all under 0.5 min). If the videos fail, the rows run in turn. Processes share a
# GPU by time-slicing (no MPS here: kernels of two processes never run at once), so side
# by side gains only where a row alone leaves the GPU idle, between its steps; the ms a
# step in log.txt tells. Its use: rows that together fit one call only if they overlap.
# table.md (train.table --report_only) lists every row: finished, paused or not run.
# Results under $OUT:
#   log.txt      versions, each row's per-epoch val top-1, val sync pair, learning rate
#                and Keras' end-of-epoch line (its ms a step), and python -m
#                train.curves' table of the rows (when each left sync-blind);
#   results.tgz  table.md, table.png and each finished row's config.json, result.json,
#                log.csv: unpack into $RESULTS_DIR and commit;
#   state.tgz    the paused rows (their backup and best.keras, a few MB): put it at
#                $RESULTS_DIR/state.tgz and the next call resumes them.
# Environment: BUDGET (device), WORKERS (16), EXTRA_FLAGS (--extra_flags of the table),
# RESULTS_DIR, WORK_DIR (/tmp/t), JOBS, CACHE_DIR. tools/device_rehearse.sh runs it on a CPU.
set -uo pipefail
rows=${1:-rstg_all_temp,rstg_time_only,rstg_space_only}
minutes=${2:-8.6}
results=${RESULTS_DIR:-experiments/table1_device3}
work=${WORK_DIR:-/tmp/t}
: "${OUT:?OUT must name the folder for the results}"
OUT=$(cd "$OUT" && pwd) || exit 2      # absolute: the packing below runs in the work dir
IFS=, read -ra row_list <<< "$rows"
jobs=${JOBS:-1}
if ! [[ "$jobs" =~ ^[1-9][0-9]*$ ]]; then echo "JOBS must be a positive integer; got '$jobs'" >&2; exit 2; fi
if [ "$(printf '%s\n' "${row_list[@]}" | sort | uniq -d)" ]; then
    echo "a row is named twice in '$rows'" >&2; exit 2
fi
python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .device/whl/*.whl || exit 2
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
rm -rf "$work" && mkdir -p "$work" && cp -r "$results/." "$work/" || exit 2
if [ -f "$work/state.tgz" ]; then      # never over a row that has finished since
    tar xzf "$work/state.tgz" -C "$work" --skip-old-files && rm "$work/state.tgz" || exit 2
fi
table=(python3 -m train.table --in_memory --budget="${BUDGET:-device}" --digits=3
       --mnist=.device/mnist.npz --workers="${WORKERS:-16}" --work_dir="$work"
       ${EXTRA_FLAGS:+--extra_flags="$EXTRA_FLAGS"})
start=$(date +%s)
deadline=$(python3 -c "print($start + int(60 * $minutes) + 45)")  # the table ends itself before
outer() { echo $(( deadline - $(date +%s) > 1 ? deadline - $(date +%s) : 1 )); }
left() { python3 -c "print(round($minutes - ($(date +%s) - $start) / 60, 2))"; }
{
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"
    python3 -c 'import jax, keras; print("jax", jax.__version__, "keras", keras.__version__, jax.devices())'
    cache=${CACHE_DIR:-/tmp/videos}
    if [ "$jobs" -gt 1 ]; then      # the videos once, for the row processes below
        echo "rows side by side: $jobs at a time; videos in $cache"
        timeout -s INT -k 20 "$(outer)" "${table[@]}" --data_cache="$cache" --data_only \
            || { echo "train.table --data_only exit code $?: the rows in turn instead"; jobs=1; }
    fi
    if [ "$jobs" -le 1 ]; then      # one process, the rows in turn
        timeout -s INT -k 20 "$(outer)" "${table[@]}" --rows="$rows" --whole_rows \
            --time_budget_minutes="$(left)"
        echo "train.table exit code: $?"
    else    # up to $jobs row processes side by side, each with its own log under $OUT
        mkdir -p "$OUT/rows"
        export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-$(python3 -c "print(round(0.9 / $jobs, 2))")}
        for row in "${row_list[@]}"; do
            while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
            if [ "$(python3 -c "print(int($(left) >= 0.5))")" = 0 ]; then
                echo "$row: not started, $(left) min left"; continue
            fi
            echo "$row: started $(( $(date +%s) - start )) s in, $(left) min left"
            ( timeout -s INT -k 20 "$(outer)" "${table[@]}" --data_cache="$cache" \
                  --rows="$row" --whole_rows --time_budget_minutes="$(left)" \
                  > "$OUT/rows/$row.log" 2>&1
              echo "$row: train.table exit code $? after $(( $(date +%s) - start )) s" ) &
        done
        wait
        for row in "${row_list[@]}"; do
            [ -f "$OUT/rows/$row.log" ] && { echo "=== $row"; cat "$OUT/rows/$row.log"; }
        done
        timeout 60 "${table[@]}" --rows="$rows" --whole_rows --report_only  # every row's table.md
    fi
} 2>&1 | tr '\r' '\n' | sed 's/\x1b\[[0-9;]*m//g' \
    | awk '!/^ *[0-9]+\/[0-9]+ / || /val_loss/ { print; fflush() }' > "$OUT/log.txt"
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
