#!/usr/bin/env bash
# The GPU recipe, on a device machine, from the repository root, with .gpu/ (scripts/gpu/prepare.sh) carried:
#   device run: `bash scripts/gpu/train.sh`, carry [".gpu"], timeout_s 600
# Installs the carried wheels, trains from the shipped model with --preset gpu for MINUTES (default 8) of steps,
# then averages the last checkpoints and exports them with the shipped model's levels and training record (GPU
# hours). Under $OUT (runs/gpu without one): ncodec-base.safetensors, avg.pt (export here if the export failed
# there), the run's log.csv and log.jsonl and train.log. Ship only through the gate (python -m eval.compare).
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
    --out-dir "$RUN" --time-limit-min "${MINUTES:-8}" --export "$OUT/ncodec-base.safetensors" \
    --version "${VERSION:-gpu}" ${EXTRA:-} 2>&1 | tr '\r' '\n' | grep -v 'it/s\]$' | tee "$OUT/train.log"
status=${PIPESTATUS[0]}
cp "$RUN"/avg.pt "$RUN"/log.csv "$RUN"/log.jsonl "$OUT"/ 2>/dev/null
[ -f "$OUT/avg.pt" ] || cp "$RUN"/latest.pt "$OUT"/ 2>/dev/null
ls -l "$OUT"
exit "$status"
