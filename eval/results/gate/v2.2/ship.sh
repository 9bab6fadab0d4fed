#!/usr/bin/env bash
# After the run (runs/v2e, 125 minutes of train_v2 from 2.1, cosine decay to 0.1x, average 0.999): export its
# average as 2.2, gate it against 2.1's saved points, then (time allowing) the trained weights and the kept
# checkpoints' averages, each also against 1.17's fixed points (the learning curve). Between: the standard set
# the P/I ratios and the perceptual metrics of the winner.
cd /work/main
export PYTHONPATH=. OMP_NUM_THREADS=2
PY=.venv/bin/python
G=eval/results/gate
OUT=eval/results/gate/v2.2
while pgrep -f "train_v2 .*runs/v2e" > /dev/null; do sleep 10; done
date; echo "training done"; tail -2 runs/v2e-2.out
mkdir -p runs/exp2
gate() {   # name checkpoint weights
  $PY -m neuralcodec.training.export_v2 $2 -o runs/exp2/$1.safetensors --version 2.2 --weights $3 \
      --command "python -m neuralcodec.training.train_v2 --init-from ncodec-base --out runs/v2e --minutes 125 --ema 0.999 --lr-end 0.1  # minutes 10-125 resumed (--resume runs/v2e/latest.pt --minutes 115) with the batched MS-SSIM" \
      > runs/exp2/$1.export.txt 2>&1
  $PY -m eval.compare runs/exp2/$1.safetensors $G/ncodec-base-v2.1.val-rd.json --save $OUT/$1.val-rd.json 2>&1 \
      | grep -v Warning | grep -v "setattr\|return self._float" > $OUT/$1.gate.txt
  $PY -m eval.compare $OUT/$1.val-rd.json $G/ncodec-base-v1.17.val-rd.json 2>&1 | tail -4 > $OUT/$1.vs-1.17.txt
  date; echo "gated $1"; tail -3 $OUT/$1.gate.txt; cat $OUT/$1.vs-1.17.txt
}
gate final-ema runs/v2e/latest.pt ema
echo SHIPGATE_DONE
if grep -q "NEW wins" $OUT/final-ema.gate.txt; then
  $PY -m eval --clips standard --max-frames 50 --codecs ncodec,x264-lowdelay --metrics psnr,msssim \
      --model runs/exp2/final-ema.safetensors --out eval/results/v2.2/ --no-progress > runs/exp2/standard.txt 2>&1
  date; echo "standard eval done"; grep -i "bd" -A6 eval/results/v2.2/results.md | head -30
  $PY eval/results/gate/v2-codec/pframes.py runs/exp2/final-ema.safetensors > $OUT/pframes.txt 2>&1
  date; echo "pframes done"
  $PY -m eval --clips standard --max-frames 20 --codecs ncodec,x264-lowdelay --metrics psnr,cvvdp,vmaf \
      --model runs/exp2/final-ema.safetensors --out eval/results/perceptual/v2.2/ --no-progress > runs/exp2/perceptual.txt 2>&1
  date; echo "perceptual done"
fi
gate final-model runs/v2e/latest.pt model
for m in 60; do
  f=$(ls runs/v2e/ck-at-$m.pt 2>/dev/null || ls runs/v2e/ck-at-$((m+1)).pt 2>/dev/null)
  [ -n "$f" ] && gate ck$m-ema $f ema
done
echo ALLDONE
