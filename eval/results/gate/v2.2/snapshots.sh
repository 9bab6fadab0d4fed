#!/usr/bin/env bash
# Keep a copy of each checkpoint of the run (runs/v2e/ck-at-MIN.pt, MIN its log minute): the learning curve's points
# are gated after the run, when the cores are free.
cd /work/main
seen=""
while pgrep -f "train_v2 .*runs/v2e" > /dev/null; do
  if [ -f runs/v2e/latest.pt ]; then
    m=$(stat -c %Y runs/v2e/latest.pt)
    if [ "$m" != "$seen" ]; then
      seen=$m
      sleep 5   # the atomic rename is done; the log has the step
      min=$(tail -1 runs/v2e/log.jsonl | python3 -c "import json,sys; print(int(round(json.loads(sys.stdin.read())['min'])))")
      cp runs/v2e/latest.pt runs/v2e/ck-at-$min.pt
      echo "$(date +%T) checkpoint kept at log minute $min"
    fi
  fi
  sleep 20
done
