#!/usr/bin/env bash
# The GPU checks of issue 21, end to end, on a fresh machine with one GPU (budget: 8 minutes):
#   1. install radiograph as the README says (`make setup`: .venv with the test extras), unless
#      .venv already has it;
#   2. the CUDA tests (tests/nn/test_cuda_paths.py: every stage on CUDA against the CPU;
#      tests/longitudinal/test_device.py: the longitudinal models on CUDA against the CPU);
#   3. benchmarks/gpu_check.py: UNI-size ViT-L/16 patch encoding (tile reading, encoder, end to
#      end; goal >= 2,000 patches/s) and a small study on CUDA compared with the same study on
#      the CPU (features, checkpoints re-evaluated, retrained models);
#   4. benchmarks/longitudinal.py: volumes per second of the longitudinal MRI model;
#   5. benchmarks/sparra_epoch.py at the paper's size and dimensions (205 subjects, 10k + 2k
#      nodes, 1024 + 768 features) on CUDA at fp32, bf16 and fp16: 5 folds x 20 epochs
#      projected (goal < 2 minutes for SPARRA).
# Without a GPU (or with --cpu) steps 2-3 run on the CPU at small sizes: the CUDA tests skip and
# the study is compared with itself (every difference 0), which the test suite also checks.
#
# Usage: bash benchmarks/gpu_check.sh [--cpu]      (from anywhere; results on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
start=$SECONDS
step() { printf '\n== %s (%d s so far)\n' "$1" $((SECONDS - start)); }

step "install"
if ! "$PY" -c "import radiograph, pytest" 2>/dev/null; then
  make setup
fi
if [ "${1:-}" != "--cpu" ] && "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  DEVICE=cuda
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
  DEVICE=cpu
  echo "no CUDA device (or --cpu): the CPU fallback, at small sizes"
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"

step "CUDA tests"
timeout 180 "$PY" -m pytest tests/nn/test_cuda_paths.py tests/longitudinal/test_device.py -q \
  -p no:cacheprovider

if [ "$DEVICE" = cuda ]; then
  step "encoders and a small study, CUDA against CPU"
  timeout 240 "$PY" benchmarks/gpu_check.py --device cuda
  step "Longitudinal MRI model (issue 20): volumes per second on CUDA, fp32, bf16 and fp16"
  timeout 150 "$PY" benchmarks/longitudinal.py --devices cuda --sizes 32,64 --seconds 2
  step "Mean, ABMIL and SPARRA at the paper's size and dimensions"
  timeout 150 "$PY" benchmarks/sparra_epoch.py --part speed --device cuda --full \
    --dims 1024,768 --precision fp32,bf16,fp16 --baseline none --threads 8
else
  step "small study, CPU fallback"
  timeout 300 "$PY" benchmarks/gpu_check.py --device cpu --part study --subjects 6 --folds 2 \
    --epochs 1 --slide-size 1200 800
fi
step "done"
