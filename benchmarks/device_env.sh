# Sourced by gpu.sh and peers_gpu.sh (with $python and $stage set): ours on the path, with
# the carried wheels for what the device's image lacks (it has torch, Lightning, pandas
# and pyarrow; Hydra and OmegaConf come from .device/wheels/bench), and the staged data.
if [ -d "$stage/wheels/bench" ] && ! "$python" -c "import hydra" 2>/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --target /tmp/bench-site "$stage"/wheels/bench/*.whl
  export PYTHONPATH=/tmp/bench-site
fi
export PYTHONPATH=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/src${PYTHONPATH:+:$PYTHONPATH}
export BENCH_DATA_DIR=${BENCH_DATA_DIR:-$stage/data}
