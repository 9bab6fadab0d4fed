#!/usr/bin/env bash
# The schedule comparison: stop the main run at its 65-minute checkpoint (C), continue it 15 minutes with a constant
# learning rate (A) and 15 minutes with a cosine decay to 0.1x (B), export C (average and weights), A and B, gate all.
cd /work/main
export PYTHONPATH=. OMP_NUM_THREADS=2
PY=.venv/bin/python
while true; do
  m=$(tail -1 runs/v2d/log.jsonl | $PY -c "import json,sys; print(json.loads(sys.stdin.read())['min'])")
  if $PY -c "import sys; sys.exit(0 if float('$m') >= 65.0 else 1)"; then break; fi
  sleep 10
done
pkill -f "train_v2 --init-from ncodec-base --out runs/v2d" ; sleep 3
date; echo "main stopped at log min $m"
mkdir -p runs/v2d-c && cp runs/v2d/latest.pt runs/v2d/card.json runs/v2d-c/
$PY -m neuralcodec.training.train_v2 --resume runs/v2d-c/latest.pt --out runs/v2d-a --minutes 15 > runs/v2d-a.out 2>&1
date; echo "A done"
$PY -m neuralcodec.training.train_v2 --resume runs/v2d-c/latest.pt --out runs/v2d-b --minutes 15 --lr-end 0.1 > runs/v2d-b.out 2>&1
date; echo "B done"
mkdir -p runs/exp
for x in "c ema" "c model" "a ema" "b ema"; do
  set -- $x
  $PY -m neuralcodec.training.export_v2 runs/v2d-$1/latest.pt -o runs/exp/$1-$2.safetensors --version 2.1 --weights $2 > runs/exp/$1-$2.export.txt 2>&1
done
date; echo "exported"
for x in c-ema c-model a-ema b-ema; do
  $PY -m eval.compare runs/exp/$x.safetensors eval/results/gate/ncodec-base-v2.0.val-rd.json --save runs/exp/$x.val-rd.json > runs/exp/$x.gate.txt 2>&1
  date; echo "gated $x"; tail -3 runs/exp/$x.gate.txt
done
echo ALLDONE
