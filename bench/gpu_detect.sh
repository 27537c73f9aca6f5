#!/usr/bin/env bash
# Detector training throughput on one NVIDIA GPU: Faster R-CNN ResNeXt-101 32x8d FPN (the Harbin
# study's) on 1024x512 images with AMP (GradScaler), batch 8.
#
# Prints the figures of bench/detect.py --part train on CUDA: (a) a bare torchvision training
# loop, (b) our `detect train` loop on the same images and model, and (b)/(a) (goal >= 0.9).
# Then prediction and Grad-CAM images/s (bench/detect_predict.py: `detect predict` against a
# bare torchvision inference loop on the same model, images and device).
#
# Self-contained and offline: installs nothing, downloads nothing (RANDOM weights: speed does
# not depend on them; synthetic facades seeded into a throwaway PostGIS cluster). Needs this
# checkout's .venv (torch with CUDA) and PostgreSQL + PostGIS binaries (`make system-deps
# SYSTEM_DEPS=postgis`), or `--url URL` of a scratch database. Finishes within ~8 minutes.
#
# Usage: bash bench/gpu_detect.sh [extra bench/detect.py options, e.g. --batch-size 16]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PREFECT_SERVER_ANALYTICS_ENABLED=false

if [[ ! -x $PY ]]; then
    echo "no $PY: run 'make setup' first (or set PYTHON=/path/to/python with streetaudit installed)" >&2
    exit 2
fi
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
"$PY" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device; this benchmark needs one")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
PY
CPUS=$(nproc)
WORKERS=$(( CPUS > 3 ? (CPUS - 2 < 8 ? CPUS - 2 : 8) : 1 ))
echo "CPUs: $CPUS, decoding workers: $WORKERS"
# 96 images of 1024x512, batch 8, 2 epochs per loop, 2 interleaved runs of each loop.
timeout 290 "$PY" bench/detect.py --part train --device cuda \
    --architecture fasterrcnn_resnext101_32x8d_fpn --size 1024x512 \
    --images 96 --epochs 2 --batch-size 8 --repeat 2 --workers "$WORKERS" "$@"
exec timeout 200 "$PY" bench/detect_predict.py --device cuda \
    --architecture fasterrcnn_resnext101_32x8d_fpn --size 1024x512 --images 128 --batch-size 8
