#!/usr/bin/env bash
# One prepared check on a GPU machine without network access (torch, numba,
# numba-cuda and CuPy installed there), under 8 minutes: the card, `loopgrad
# info`, the CUDA tests on the card, the issue-23 benchmark (checked against
# float64, then timed), and a per-kernel profile of the rows.  Everything goes
# under one folder, ready to commit.
#
#   bash benchmarks/gpu_check.sh [OUTDIR]     # from the repository root; OUTDIR: $OUT or gpu-check
set -u
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export NUMBA_ENABLE_CUDASIM=0

{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  python3 -c 'import numpy, numba, torch; print("numpy", numpy.__version__, "numba", numba.__version__, "torch", torch.__version__, "cuda", torch.version.cuda)'
  date -u +%FT%TZ; } 2>&1 | tee "$out/card.txt"
python3 -m loopgrad info > "$out/info.txt" 2>&1
python3 -c 'import loopgrad.cuda as g; g.kernels(); print("loopgrad CUDA kernels usable")' || exit 1

echo "== CUDA tests on the GPU (≤ 180 s; the first uses of each kernel compile it)"
timeout 180 python3 -m pytest -q -p no:cacheprovider -rs tests/cuda 2>&1 | tee "$out/tests.txt" | tail -5

echo "== bench (≤ 180 s)"
timeout 180 python3 -m loopgrad bench --impl loopgrad-cuda,torch-cuda,torch-cuda-hand \
    --shapes 10x4x4,1000000x4x4,10000000x16x16,100000x256x256,4096x4096x4096 \
    --json "$out/results-gpu.json" --markdown --no-progress --max-time 1 > "$out/bench.md" 2>&1
tail -15 "$out/bench.md"

echo "== where the time goes (≤ 90 s)"
timeout 40 python3 benchmarks/cuda_probe.py overhead > "$out/probe.txt" 2>&1
timeout 50 python3 benchmarks/cuda_probe.py kernels >> "$out/probe.txt" 2>&1
cat "$out/probe.txt"
echo "written: $out/{card,info,tests,bench,probe}.txt|md, $out/results-gpu.json"
