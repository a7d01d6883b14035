#!/usr/bin/env bash
# Issue #29 item 5: the neural peers' published-settings runs (the headline's stage 1) on a
# lent device, in what gpu.sh leaves of the lend. On these 2 cores SGNN-HN on full
# Diginetica needs about 7.5 hours (4 on both threads), more than a session, and a run
# cannot carry over between sessions (its checkpoint stays on the machine); on the device
# an epoch should take seconds (not yet measured there). Each run is `make peers`'s command
# (30 epochs, the test set evaluated after each); result.json and ranks.npy come back under
# OUT/<model>_<split>/, for results/records/peers/<model>/<split>/. A run stopped at the
# budget leaves its checkpoint on the machine: its per-epoch history comes back as
# history.json, and a later call while the machine is still warm resumes it (resume=)
# instead of starting again; a run an earlier call finished is not run again.
#
#   here:   bash benchmarks/gpu_pack.sh OFFICIAL_CHECKOUT   # stages .device/ (data, wheels)
#   device: bash benchmarks/peers_gpu.sh "$OUT"             # run with carry=[".device"]
#   tests:  RUNS=srgnn:synthetic EXTRA="n_epochs=1" bash benchmarks/peers_gpu.sh OUT
#
# Environment: RUNS (model:split pairs, in order; "sgnnhn:diginetica_srgnn
# narm:diginetica_srgnn narm:yoochoose1_64 srgnn:diginetica_srgnn"), BUDGET_S (seconds
# for all runs, each stopped at what is left; 540, inside one call's 600), EXTRA (more
# overrides), PYTHON (python3), BENCH_DATA_DIR, WORK (the runs' directories, kept between
# calls on a warm machine; /tmp/peers).
set -euo pipefail
out=${1:?usage: peers_gpu.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
stage=$here/../.device
python=${PYTHON:-python3}
source "$here/device_env.sh"
cd "$here/.."
budget=${BUDGET_S:-540}
deadline=$((SECONDS + budget))

collect() { # the latest attempt's record, else the history in its checkpoint
  local last=$1 to=$2
  mkdir -p "$to"
  if [ -f "$last/result.json" ]; then
    cp "$last/result.json" "$last/ranks.npy" "$to/"
  elif [ -f "$last/checkpoints/last.ckpt" ]; then
    "$python" -c 'import json, sys, torch
c = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
json.dump(c["bench"]["history"], open(sys.argv[2], "w"), indent=1)' \
      "$last/checkpoints/last.ckpt" "$to/history.json"
  fi
}

for run in ${RUNS:-sgnnhn:diginetica_srgnn narm:diginetica_srgnn narm:yoochoose1_64 srgnn:diginetica_srgnn}; do
  model=${run%%:*} split=${run#*:}
  base=${WORK:-/tmp/peers}/$model/$split # not OUT: checkpoints are larger than what comes back
  mkdir -p "$base"
  tries=$(find "$base" -maxdepth 1 -name 'try*' | wc -l)
  last=$base/try$tries
  left=$((deadline - SECONDS))
  if [ -f "$last/result.json" ]; then
    echo "$model $split: finished by an earlier call"
  elif [ "$left" -lt 60 ]; then
    echo "$model $split: skipped, ${left}s of the budget left"
  else
    resume=()
    [ -f "$last/checkpoints/last.ckpt" ] && resume=("resume=$last")
    last=$base/try$((tries + 1))
    status=0
    # shellcheck disable=SC2086  # EXTRA is a list of overrides
    timeout "$left" "$python" -m bench.run model="$model" dataset="$split" eval=peer_papers \
      save_model=false hydra.run.dir="$last" "${resume[@]}" ${EXTRA:-} || status=$?
    echo "$model $split: exit $status${resume:+ (${resume[0]})}, $((SECONDS - deadline + budget))s into the budget"
  fi
  if [ -d "$last" ]; then collect "$last" "$out/${model}_$split"; fi
done
