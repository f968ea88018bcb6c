"""Three loopgrad.loss calls at 384×2048×M on one thread, for cachegrind as AVX2 (valgrind 3.19
has no AVX-512):

    env $(AVX2 env) NUMBA_NUM_THREADS=1 valgrind --tool=cachegrind --cache-sim=yes \
        --D1=49152,12,64 --LL=2097152,16,64 python3.11 dev/cg_loss_v23.py M

(the real interpreter, not pyenv's shim; dev/products_v23.md 24j)
"""
import sys, numpy as np, numba
numba.set_num_threads(1)
import loopgrad
from loopgrad.cpu import background
N, K, M = 384, 2048, int(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.standard_normal((N, K), dtype=np.float32); W = rng.standard_normal((K, M), dtype=np.float32); y = rng.standard_normal((N, M), dtype=np.float32)
for _ in range(3): loopgrad.loss(x, W, y)
