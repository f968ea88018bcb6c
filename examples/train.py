"""Train with loopgrad's gradients in PyTorch: fit W by SGD and Adam, next to pure torch.

    python examples/train.py                      # N = 10⁶, K = M = 16, 50 steps of each
    python examples/train.py --n 20000 --steps 20 --optimizer adam --plot adam.png

The same as `loopgrad fit` (options: --help).  The loops are in
loopgrad/fit.py; the one line that differs between them is

    loss = loopgrad.torch.loss(x, W, y)              # loopgrad
    loss = ((torch.relu(x @ W) - y) ** 2).sum()      # pure torch

followed in both by loss.backward() and optimizer.step().  The loss curves
go to train_loss.png unless --plot says otherwise.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from a checkout

from loopgrad import fit  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--plot" or a.startswith("--plot=") for a in argv):
        argv += ["--plot", "train_loss.png"]
    sys.exit(fit.main(argv))
