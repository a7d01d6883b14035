#!/usr/bin/env bash
# Stages .device/ (git-ignored, never committed) for benchmarks/gpu.sh and peers_gpu.sh on a
# lent device,
# which reaches nothing outside: a copy of the SR-GNN splits of Diginetica and yoochoose1/64
# (their terms allow no redistribution: they only travel to the device for the run), a
# checkout of the
# official GRU4Rec PyTorch code, and the wheels the device's image lacks (Python 3.12):
# Hydra and OmegaConf for ours, numpy<2 and pandas<3 for the official code.
#
#   bash benchmarks/gpu_pack.sh /path/to/GRU4Rec_PyTorch_Official [DATA_DIR]
set -euo pipefail
official=${1:?usage: gpu_pack.sh OFFICIAL_CHECKOUT [DATA_DIR]}
root=$(cd "$(dirname "$0")/.." && pwd)
data=${2:-${BENCH_DATA_DIR:-$root/../shared/data}}
stage=$root/.device
rm -rf "$stage" && mkdir -p "$stage/data/diginetica" "$stage/data/yoochoose" "$stage/official" \
  "$stage/wheels"
cp -r "$data/diginetica/srgnn" "$stage/data/diginetica/"
cp -r "$data/yoochoose/srgnn_yoochoose1_64" "$stage/data/yoochoose/"
cp "$official"/{run.py,gru4rec_pytorch.py,evaluation.py} "$stage/official/"
py312=(--only-binary=:all: --python-version 3.12 --implementation cp
       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps "${py312[@]}" -d "$stage/wheels/bench" \
  hydra-core==1.3.2 omegaconf==2.3.0
python3 -m pip wheel -q --no-deps -w "$stage/wheels/bench" antlr4-python3-runtime==4.9.3
python3 -m pip download -q --no-deps "${py312[@]}" -d "$stage/wheels/official" \
  numpy==1.26.4 pandas==2.2.3 pytz tzdata joblib
du -sh "$stage"
