#!/usr/bin/env bash
# One prepared check on a GPU machine without network access (torch, numba,
# numba-cuda and CuPy installed there), about 7 minutes (each step has a timeout;
# give the run ~590 s, and what it wrote comes back even if cut): the card and
# versions, a smoke check of each kernel family (ends the run early if the kernels
# fail there), the issue-23 benchmark (checked against float64, then timed), a
# per-kernel profile, the products at other sizes, Nsight Compute's stall reasons
# where the image has ncu, registers and SASS of the kernels, `loopgrad info` and
# the CUDA tests on the card last.  Everything goes under one folder (10 files),
# ready to commit.
#
#   bash benchmarks/gpu_check.sh [OUTDIR]     # from the repository root; OUTDIR: $OUT or gpu-check
set -u
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export NUMBA_ENABLE_CUDASIM=0
t0=$SECONDS
stamp() { echo "== $1 (at $((SECONDS - t0)) s)"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  python3 -c 'import sys, numpy, numba, torch; from importlib.metadata import version as v
print("python", sys.version.split()[0], "numpy", numpy.__version__, "numba", numba.__version__,
      "numba-cuda", v("numba-cuda"), "torch", torch.__version__, "cuda", torch.version.cuda)'
  date -u +%FT%TZ
  stamp "smoke: first calls of each kernel family, checked (≤ 120 s)"
  timeout 120 python3 benchmarks/cuda_probe.py smoke; } > "$out/card.txt" 2>&1
rc=$?
cat "$out/card.txt"
[ $rc -eq 0 ] || { echo "smoke failed (rc $rc): stopping here"; exit 1; }

stamp "bench (≤ 300 s: on an H200's host, 10⁷×16×16's float64 reference and bounds took 42 s, each check 25 s)"
timeout 300 python3 -m loopgrad bench --impl loopgrad-cuda,torch-cuda,torch-cuda-hand \
    --shapes 10x4x4,1000000x4x4,10000000x16x16,100000x256x256,4096x4096x4096 \
    --json "$out/results-gpu.json" --markdown --no-progress --max-time 1 > "$out/bench.md" 2>&1
tail -15 "$out/bench.md"

stamp "where the time goes (≤ 80 s)"
{ timeout 30 python3 benchmarks/cuda_probe.py overhead
  timeout 50 python3 benchmarks/cuda_probe.py kernels; } > "$out/probe.txt" 2>&1
cat "$out/probe.txt"

stamp "the products at other sizes (≤ 90 s; LOOPGRAD_CUDA_TUNE, dev/cuda_v31.md 31d)"
for v in BK=16 SUM_ROWS=256 BK=16,SUM_ROWS=256; do
  echo "== LOOPGRAD_CUDA_TUNE=$v"
  LOOPGRAD_CUDA_TUNE=$v timeout 30 python3 benchmarks/cuda_probe.py kernels \
      --shapes 100000x256x256,4096x4096x4096 2>&1 | grep -v -i warn
done > "$out/tune.txt" 2>&1
cat "$out/tune.txt"

stamp "why the products stall: Nsight Compute on forward at 4096³, where the image has ncu (≤ 60 s)"
if command -v ncu > /dev/null; then
  timeout 60 ncu --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis \
      --kernel-name regex:forward --launch-skip 1 --launch-count 1 \
      python3 benchmarks/cuda_probe.py kernels --shapes 4096x4096x4096 > "$out/ncu.txt" 2>&1
  grep -i -E "stall|issue|warp cycles|eligible|active warps" "$out/ncu.txt" | head -30
else
  echo "no ncu on this image" > "$out/ncu.txt"
fi

stamp "registers and SASS (≤ 40 s)"
timeout 40 python3 benchmarks/cuda_probe.py sass --dump "$out/sass-forward.txt" > "$out/sass.txt" 2>&1
cat "$out/sass.txt"
timeout 30 python3 -m loopgrad info > "$out/info.txt" 2>&1

# each test's first call compiles its kernels (2-19 s each on an H200's host): in one
# process the tests ran past 120 and 150 s at stop 31, so 8 processes share them
stamp "CUDA tests on the GPU (≤ 150 s, 8 processes)"
timeout 150 python3 -m pytest -v -n 8 -p no:cacheprovider -rs tests/cuda > "$out/tests.txt" 2>&1
tail -8 "$out/tests.txt"
stamp "done"
echo "written: $out/{card,bench,probe,tune,ncu,sass,sass-forward,info,tests}.txt|md, $out/results-gpu.json"
