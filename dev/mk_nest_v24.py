"""The micro-kernel's rate, one thread, as the nest grows around it (each case its own
function): A and B one micro-panel (L1); A from a 96 KiB block (12 micro-panels, L2); B from
JP panels (each reused over the 12); C into a block's tiles; then 4 KC blocks with B's
panels for each (JP·4 panels of 32 KiB) (dev/products_v24.md 25c).

    python dev/mk_nest_v24.py [JP=8]
"""
import sys, time, numpy as np, numba
from numba import njit
from loopgrad.cpu.intrinsics import microkernel, pointer
numba.set_num_threads(1)
MR, NR, KC, MC = 8, 32, 256, 96
mk = microkernel("float32", MR, NR, 16)
JP = int(sys.argv[1]) if len(sys.argv) > 1 else 8
rng = np.random.default_rng(0)
Ap = rng.standard_normal(MC * KC).astype(np.float32)
Bp = rng.standard_normal(JP * KC * NR).astype(np.float32)
Cb = np.zeros(MC * JP * NR, np.float32)
NIR = MC // MR
def make(a_moves, b_moves, c_moves):
    @njit
    def run(reps, Ap2, Bp2, Cb2):
        A, B, C = pointer(Ap2), pointer(Bp2), pointer(Cb2)
        for r in range(reps):
            for jr in range(JP):
                for ir in range(NIR):
                    ao = ir * KC * MR if a_moves else 0
                    bo = jr * KC * NR if b_moves else 0
                    co = (jr * MC + ir * MR) * NR if c_moves else (ir & 7) * MR * NR
                    mk(KC, A, ao, MR, 1, B, bo, NR, C, co, NR)
        return 0
    return run
def make_blocks(nblk, ct_later, kc_rt):
    @njit
    def run(reps, Ap2, Bp2, Cb2, Ct2, kcv):
        A, B, C, Ct = pointer(Ap2), pointer(Bp2), pointer(Cb2), pointer(Ct2)
        kc = kcv if kc_rt else KC
        for r in range(reps):
            for pc in range(nblk):
                for jr in range(JP):
                    for ir in range(NIR):
                        bo = (jr * nblk + pc) * KC * NR
                        if ct_later and pc > 0:
                            mk(kc, A, ir * kc * MR, MR, 1, B, bo, NR, Ct, 0, NR)
                        else:
                            mk(kc, A, ir * kc * MR, MR, 1, B, bo, NR, C, (jr * MC + ir * MR) * NR, NR)
        return 0
    return run
cases = {"A,B fixed, C 8 tiles": make(False, False, False), "A moves": make(True, False, False),
         "B moves": make(False, True, False), "A,B move": make(True, True, False),
         "A,B,C move": make(True, True, True)}
Bp4 = rng.standard_normal(4 * JP * KC * NR).astype(np.float32); Ct = np.zeros(MR * NR, np.float32)
bcases = {"4 blocks": make_blocks(4, False, False), "4 blocks, Ct later": make_blocks(4, True, False),
          "4 blocks, Ct later, kc run-time": make_blocks(4, True, True)}
flop = 2 * MR * NR * KC * JP * NIR
reps = max(1, int(2e9 / flop))
for f in cases.values(): f(1, Ap, Bp, Cb)
ts = {k: [] for k in cases}
for _ in range(7):
    for k, f in cases.items():
        t = time.perf_counter(); f(reps, Ap, Bp, Cb); ts[k].append(time.perf_counter() - t)
for f in bcases.values(): f(1, Ap, Bp4, Cb, Ct, KC)
bts = {k: [] for k in bcases}
for _ in range(7):
    for k, f in bcases.items():
        t = time.perf_counter(); f(max(1, reps // 4), Ap, Bp4, Cb, Ct, KC); bts[k].append(time.perf_counter() - t)
print(f"JP {JP} blocks:", "; ".join(f"{k} {flop * 4 * max(1, reps // 4) / min(v) / 1e9:.0f}" for k, v in bts.items()))
print(f"JP {JP}:", "; ".join(f"{k} {flop * reps / min(v) / 1e9:.0f}" for k, v in ts.items()), "GFLOP/s (best of 7)")
