#!/usr/bin/env bash
# Issue #29 item 5: the neural peers' published-settings runs (the headline's stage 1) on a
# lent device, in what gpu.sh leaves of the lend. On these 2 cores SGNN-HN on full
# Diginetica needs about 7.5 hours (4 on both threads), more than a session, and a run
# cannot carry over between sessions (its checkpoint stays on the machine); on the device
# an epoch should take seconds (not yet measured there). Each run is `make peers`'s command
# (30 epochs, the test set evaluated after each); result.json and ranks.npy come back under
# OUT/<model>_<split>/, for results/records/peers/<model>/<split>/, with logs/metrics.csv
# (the per-epoch metrics), which a run stopped at the budget still leaves.
#
#   here:   bash benchmarks/gpu_pack.sh OFFICIAL_CHECKOUT   # stages .device/ (data, wheels)
#   device: bash benchmarks/peers_gpu.sh "$OUT"             # run with carry=[".device"]
#   tests:  RUNS=srgnn:synthetic EXTRA="n_epochs=1" bash benchmarks/peers_gpu.sh OUT
#
# Environment: RUNS (model:split pairs, in order; "sgnnhn:diginetica_srgnn
# srgnn:diginetica_srgnn"), BUDGET_S (seconds for all runs, each stopped at what is left;
# 540, inside one call's 600), EXTRA (more overrides), PYTHON (python3), BENCH_DATA_DIR.
set -euo pipefail
out=${1:?usage: peers_gpu.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
stage=$here/../.device
python=${PYTHON:-python3}
source "$here/device_env.sh"
cd "$here/.."
deadline=$((SECONDS + ${BUDGET_S:-540}))
for run in ${RUNS:-sgnnhn:diginetica_srgnn srgnn:diginetica_srgnn}; do
  model=${run%%:*} split=${run#*:}
  left=$((deadline - SECONDS))
  if [ "$left" -lt 60 ]; then
    echo "$model $split: skipped, ${left}s of the budget left"
    continue
  fi
  dir=/tmp/peers/$model/$split # not under OUT: the checkpoints are larger than what comes back
  rm -rf "$dir"
  status=0
  # shellcheck disable=SC2086  # EXTRA is a list of overrides
  timeout "$left" "$python" -m bench.run model="$model" dataset="$split" \
    eval.per_epoch=true eval.unknown_test_items=miss 'eval.also_tie_modes=[standard]' \
    save_model=false hydra.run.dir="$dir" ${EXTRA:-} || status=$?
  mkdir -p "$out/${model}_$split"
  for f in result.json ranks.npy logs/metrics.csv; do
    [ -f "$dir/$f" ] && cp "$dir/$f" "$out/${model}_$split/"
  done
  echo "$model $split: exit $status, $((SECONDS - deadline + ${BUDGET_S:-540}))s into the budget"
done
