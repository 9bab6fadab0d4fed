#!/usr/bin/env bash
# Side-by-side training arms from the shipped model, each gated on the validation clips (issue #10, item 1).
#
#   scripts/arms.sh OUT MINUTES REFERENCE.val-rd.json "NAME: train_v2 options" ["NAME: options" ...]
#   scripts/arms.sh runs/arms 30 eval/results/gate/ncodec-base-v2.2.val-rd.json "plain:" "wide24: --latent-dim 24"
#
# One arm after the other (two torch jobs at once on two cores slow both): train_v2 --init-from ncodec-base for
# MINUTES with the average and a cosine decay to 0.1x (the options given win), export the average, gate it against
# the reference points (eval.compare; the points are saved beside it), then one line per arm: the gate's BD-rates.
# Needs data/train.ncpack (README: prepare, pack).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then sed -n 2,10p "$0" | sed 's/^# \{0,1\}//'; exit 2; fi
out=$1 minutes=$2 ref=$3
shift 3
py=${PYTHON:-python}
export PYTHONPATH=.
mkdir -p "$out"
for arm in "$@"; do
  name=${arm%%:*}
  opts=${arm#*:}
  echo "$(date +%T) arm $name:$opts" >&2
  # shellcheck disable=SC2086  # the options are words
  "$py" -m neuralcodec.training.train_v2 --init-from ncodec-base --out "$out/$name" --minutes "$minutes" \
      --ema 0.999 --lr-end 0.1 $opts > "$out/$name.train.txt" 2>&1
  "$py" -m neuralcodec.training.export_v2 "$out/$name/latest.pt" -o "$out/$name.safetensors" --version "arm-$name" \
      --command "scripts/arms.sh $out $minutes $ref '$arm'" > "$out/$name.export.txt" 2>&1
  "$py" -m eval.compare "$out/$name.safetensors" "$ref" --save "$out/$name.val-rd.json" > "$out/$name.gate.txt" 2>&1 \
      || true   # exit status 3: the arm does not win; its numbers still count
done
for arm in "$@"; do
  name=${arm%%:*}
  printf '%-12s %s\n' "$name" "$(grep -E '^  (psnr_rgb|msssim) ' "$out/$name.gate.txt" | tr -s ' ' | tr '\n' ';')"
done
