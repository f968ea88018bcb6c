# dev/fb_variants_v55.py edits: forward_block without its calls' shares of other work
EDITS = [("""                ask_next(x, y, K, M, q0, nxl, nyl, call, share)
                put_share(D, d0, S, nd, head, call, out)
""", "")]
