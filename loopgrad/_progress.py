"""A tqdm progress bar on stderr for the CLI's long commands, or a silent stand-in."""

import sys


class _NoBar:
    def set_postfix_str(self, s):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass


def progress(total: int, desc: str, unit: str, enabled: bool = True):
    """tqdm(total) on stderr; without tqdm (or when not enabled) an object that ignores calls."""
    if enabled:
        try:
            from tqdm import tqdm
        except ImportError:
            print(f"{desc}: no progress bar without tqdm (pip install tqdm)", file=sys.stderr)
        else:
            return tqdm(total=total, desc=desc, file=sys.stderr, unit=unit, dynamic_ncols=True)
    return _NoBar()
