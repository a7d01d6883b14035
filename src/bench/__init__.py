"""gru4rec-bench: a faithful, fast GRU4Rec and the harness to benchmark it."""

import os

# Tensors of 2 MB and more on transparent huge pages (torch reads this at its first large
# allocation, so it is set before anything of the package imports torch). A session
# model's full-softmax step allocates several batch x catalogue and catalogue x hidden
# tensors every step, and on 4 KB pages the first touch of each page is a fault: about
# 1.7 us here, 18 ms for one 44 MB tensor. Measured here: an SGNN-HN step on Diginetica
# 1.25x faster with it, an SR-GNN step 1.23x; GRU4Rec's own step allocates nothing that
# large. Where the system has huge pages off, nothing changes; a value already set is kept.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
