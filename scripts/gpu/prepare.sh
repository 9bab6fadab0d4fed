#!/usr/bin/env bash
# Make .gpu/, what the GPU recipe carries to a device machine (which has no network), on a machine that has one:
#   - .gpu/train.ncpack: the training pack at most 50 MB, so that it and the working tree fit the 64 MiB that travels
#     (built from DATA, default data/, a folder made by python -m neuralcodec.training.data.prepare)
#   - .gpu/whl/: wheels of the packages the device image lacks (CompressAI and pytorch-msssim, for its Python 3.12)
# Then, with a device session: run `bash scripts/gpu/train.sh` there with carry [".gpu"] (see README, "GPU recipe").
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu/whl
if [ ! -f .gpu/train.ncpack ]; then
    python -m neuralcodec.training.pack --data-root "${DATA:-data/}" -o .gpu/train.ncpack --max-mb "${MAX_MB:-50}"
fi
python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .gpu/whl compressai==1.2.8 pytorch-msssim==1.0.0
ls -l .gpu .gpu/whl
du -sh .gpu
