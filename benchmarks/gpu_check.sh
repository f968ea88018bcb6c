#!/usr/bin/env bash
# One prepared check on a GPU machine without network access (torch, numba,
# numba-cuda and CuPy installed there): the CUDA tests on the real GPU, then
# loopgrad CUDA timed against torch CUDA.  Under 5 minutes.
#
#   bash benchmarks/gpu_check.sh [OUTDIR]     # from the repository root
#
# Writes OUTDIR/gpu_tests.txt and OUTDIR/gpu_results.md (OUTDIR: $OUT or .).
set -u
cd "$(dirname "$0")/.."
out=${1:-${OUT:-.}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export NUMBA_ENABLE_CUDASIM=0

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c 'import numpy, numba, torch; print("numpy", numpy.__version__, "numba", numba.__version__, "torch", torch.__version__, "cuda", torch.version.cuda)'
python3 -c 'import loopgrad.cuda as g; g.kernels(); print("loopgrad CUDA kernels usable")' || exit 1

echo "== CUDA tests on the GPU"
timeout 200 python3 -m pytest -q -p no:cacheprovider -rs tests/cuda 2>&1 | tee "$out/gpu_tests.txt" | tail -25

echo "== timings"
timeout 240 python3 benchmarks/gpu_bench.py --out "$out/gpu_results.md"

echo "== the benchmark CLI's GPU rows (checked against float64, then timed)"
timeout 120 python3 -m loopgrad bench --shapes 10x4x4,1000000x4x4,100000x64x64 \
    --impl torch-cuda,loopgrad-cuda,torch-cuda-hand --no-progress --max-time 0.5 \
    > "$out/gpu_cli.txt" 2>&1; tail -15 "$out/gpu_cli.txt"
