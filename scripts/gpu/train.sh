#!/usr/bin/env bash
# The GPU recipe for model v2 (learned rate), on a device machine, from the repository root, with .gpu/
# (scripts/gpu/prepare.sh) carried:
#   device run: `bash scripts/gpu/train.sh`, carry [".gpu"], timeout_s 600
# Installs the carried wheels, continues the shipped model with --preset gpu for MINUTES (default 8) and exports it
# there (model v2's export freezes its tables from its priors in seconds): under $OUT (runs/gpu-v2 without one) the
# model file ncodec-base.safetensors, the last checkpoint latest.pt with card.json, log.jsonl and train.log. Then:
#   python -m eval.compare runs/gpu-v2/ncodec-base.safetensors ncodec-base   (the gate)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-runs/gpu-v2}"
RUN="${RUN:-/tmp/ncodec-gpu-v2}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/ncodec-site .gpu/whl/*.whl || exit 1
export PYTHONPATH="/tmp/ncodec-site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"
python3 -m neuralcodec.training.train_v2 --preset gpu --init-from ncodec-base --data-root .gpu/train.ncpack \
    --out "$RUN" --minutes "${MINUTES:-8}" --export "$OUT/ncodec-base.safetensors" --version "${VERSION:-gpu}" \
    ${EXTRA:-} 2>&1 | tee "$OUT/train.log"
status=${PIPESTATUS[0]}
cp "$RUN"/latest.pt "$RUN"/log.jsonl "$RUN"/card.json "$OUT"/ 2>/dev/null   # card.json: export_v2 of latest.pt
ls -l "$OUT"
exit "$status"
