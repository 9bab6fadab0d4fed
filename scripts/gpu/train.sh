#!/usr/bin/env bash
# The GPU recipe, on a device machine, from the repository root, with .gpu/ (scripts/gpu/prepare.sh) carried:
#   device run: `bash scripts/gpu/train.sh`, carry [".gpu"], timeout_s 600
# Installs the carried wheels, trains from the shipped model with --preset gpu for MINUTES (default 8) and averages
# the last 4 checkpoints. Under $OUT (runs/gpu without one): avg.pt, the run's log.csv and log.jsonl, train.log.
# The export is left for this machine (counting the tables takes minutes on CPUs, which the device's ten minutes a
# call cannot spare): python -m neuralcodec.training.export runs/gpu/avg.pt -o runs/gpu/ncodec-base.safetensors \
#   --data-root data/train.ncpack --history-from ncodec-base --gpu --version V; then the gate (eval.compare).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-runs/gpu}"
RUN="${RUN:-/tmp/ncodec-gpu-run}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/ncodec-site .gpu/whl/*.whl || exit 1
export PYTHONPATH="/tmp/ncodec-site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"
python3 -m neuralcodec.training.train --preset gpu --init-from ncodec-base --data-root .gpu/train.ncpack \
    --out-dir "$RUN" --time-limit-min "${MINUTES:-8}" ${EXTRA:-} 2>&1 | tr '\r' '\n' | grep -v 'it/s\]$' \
    | tee "$OUT/train.log"
status=${PIPESTATUS[0]}
python3 -m neuralcodec.training.average --last 4 "$RUN" -o "$RUN/avg.pt" --force
cp "$RUN"/avg.pt "$RUN"/log.csv "$RUN"/log.jsonl "$OUT"/
ls -l "$OUT"
exit "$status"
