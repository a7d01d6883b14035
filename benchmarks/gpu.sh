#!/usr/bin/env bash
# Issue #30's GPU run, prepared in advance so that a lent device's first minutes measure
# rather than set up: one `run` call, about 5 minutes. Training throughput on full
# Diginetica (SR-GNN split; cross-entropy and BPR-max, batch 512/128/32, layers 100 and
# 480; ours with and without CUDA graphs, the official code on the same device), then
# full-ranking evaluation time, each with its peak device memory. Whole epochs of the
# whole grid took about 17 minutes on an H200 (the official's epoch at batch 32 alone is
# 100 s, and a process per setting and side cost 10 s more), more than a lend: so each
# setting is timed over a window of its epoch (WINDOW_EVENTS training events' worth of
# minibatches after 20 warm-up ones, the same on both sides; 0 = whole epochs), and one
# process per side runs a batch size's settings. Settings not started within the budget
# are listed as skipped, never guessed; the cheap large batches go first.
#
#   here:   bash benchmarks/gpu_pack.sh        # stages .device/ (data copy, official code, wheels)
#   device: bash benchmarks/gpu.sh "$OUT"      # run with carry=[".device"]
#   tests:  DEVICE=cpu GRID=plumbing bash benchmarks/gpu.sh OUT   # the plumbing, on CPU
#
# Environment: DEVICE (cuda), GRID (full | plumbing), PYTHON (python3), BENCH_DATA_DIR,
# OFFICIAL (a GRU4Rec_PyTorch_Official checkout; unset = ours only), OFFICIAL_PYTHON,
# BUDGET_S (seconds of training runs before the rest is skipped; 240), WINDOW_EVENTS
# (100000, about a seventh of an epoch; 0 = whole epochs), EVAL (0 skips the
# evaluation timing: a smoke run before the real one), LOSSES and BATCH_SIZES (a part of
# the full grid: a later lend measures what an earlier one skipped; throughput.py --join
# then makes one report of the calls).
# Writes OUT/gpu_throughput.json, OUT/gpu_eval.json and OUT/gpu.md (their tables).
set -euo pipefail
out=${1:?usage: gpu.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
stage=$here/../.device
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
mkdir -p "$out"
case ${GRID:-full} in
  full) grid=(--events 0 --window-events "${WINDOW_EVENTS:-100000}" --losses ${LOSSES:-ce bpr-max}
        --layer-sizes 100 480 --batch-sizes ${BATCH_SIZES:-512 128 32}) ;;
  plumbing) grid=(--events 6000 --window-events 1000 --losses ce --layer-sizes 100
            --batch-sizes 32 128) ;;
  *) echo "error: GRID=${GRID}; expected full or plumbing" >&2; exit 2 ;;
esac

# The official code runs against its own numpy<2/pandas<3, apart from ours.
source "$here/device_env.sh"
official=${OFFICIAL:-}
[ -z "$official" ] && [ -d "$stage/official" ] && official=$stage/official
official_python=${OFFICIAL_PYTHON:-}
if [ -n "$official" ] && [ -z "$official_python" ]; then
  "$python" -m pip install -q --no-index --no-deps --target /tmp/official-site "$stage"/wheels/official/*.whl
  official_python=/tmp/official-python
  printf '#!/bin/sh\nPYTHONPATH=/tmp/official-site exec %s "$@"\n' "$python" > "$official_python"
  chmod +x "$official_python"
fi
with_official=()
[ -n "$official" ] && with_official=(--official "$official" --official-python "$official_python")

cd "$here"
"$python" throughput.py --dataset diginetica_srgnn --devices "$device" "${grid[@]}" \
  --harnesses bare fused_no_graphs --repeats 1 --budget-s "${BUDGET_S:-240}" --shared-processes \
  "${with_official[@]}" --out "$out/gpu_throughput.json"
reports=("$out/gpu_throughput.json")
if [ "${EVAL:-1}" != 0 ]; then
  "$python" eval_speed.py --dataset diginetica_srgnn --device "$device" --repeats 2 \
    "${with_official[@]}" --out "$out/gpu_eval.json"
  reports+=("$out/gpu_eval.json")
fi
"$python" summarize.py "${reports[@]}" > "$out/gpu.md"
cat "$out/gpu.md"
