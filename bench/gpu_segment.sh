#!/usr/bin/env bash
# Segmentation throughput on one NVIDIA GPU: SegFormer-B0 at 512x1024 (HxW), bf16, channels-last.
#
# Prints the same figures as bench/segment.py on CUDA: (a) bare forward passes on
# pre-decoded tensors, (b) the whole pipeline from JPEG files to rows in PostGIS, and (b)/(a).
# Goal: (b) >= 1,000 images/s on one H200, (b)/(a) >= 0.85.
#
# Self-contained and offline: it installs nothing and downloads nothing. It needs this
# checkout's .venv (`make setup`; torch with CUDA) and PostgreSQL + PostGIS binaries for the
# throwaway cluster (`make system-deps SYSTEM_DEPS=postgis`), or `--url URL` of a scratch database.
# The model is SegFormer-B0 built from its config with RANDOM weights, because hub weights may
# not be reachable there; speed does not depend on the weights. Finishes well within 5 minutes.
#
# Usage: bash bench/gpu_segment.sh [extra bench/segment.py options, e.g. --batch-size 128]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PREFECT_SERVER_ANALYTICS_ENABLED=false

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
WORKERS=$(( CPUS > 3 ? (CPUS - 2 < 16 ? CPUS - 2 : 16) : 1 ))
echo "CPUs: $CPUS, decoding workers: $WORKERS"
# Decoded batches travel from the workers through shared memory (~100 MB per batch of 64).
SHM_KB=$(df -k --output=avail /dev/shm 2>/dev/null | tail -1 || echo 0)
if (( SHM_KB < 4000000 )); then
    echo "warning: /dev/shm has only $((SHM_KB / 1024)) MB free; DataLoader workers may fail (docker: --shm-size=8g)" >&2
fi
# 8192 images (256 distinct pictures) of 1024x512, batch 64: a few seconds of GPU time per run.
exec timeout 280 "$PY" bench/segment.py --device cuda --model b0 --size 1024x512 \
    --images 8192 --distinct 256 --batch-size 64 --repeat 2 --workers "$WORKERS" "$@"
