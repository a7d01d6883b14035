"""Keep freed memory in the process instead of handing it back to the kernel each step.

glibc's malloc serves blocks over 32 MB (and, after a trim, smaller ones at the top of
the heap) from fresh anonymous mappings and unmaps them when freed, so a training step
that allocates its large buffers anew (the peers' B x n_items scores and gradients,
SGNN-HN's normalised item table: 17-44 MB over Diginetica's 43k items) has the kernel
fault in and zero their pages again every step; the huge pages of bench/__init__.py make
the faults fewer, not the zeroing. Measured on full Diginetica, one thread, processes
paired back to back (benchmarks/peer_step_ab.py, results/peer_step_ab.json): SR-GNN
1,899 faults and 10-12 ms of system time per step before, none after, the step
1.15-1.27x faster; SGNN-HN 2,834-2,881 faults and 37-38 ms per step before, none after,
1.06-1.13x faster. The GRU4Rec step's buffers are smaller, yet at batch 512 x 480 units
glibc's defaults still put some processes into a mode with 13x the page faults and
15-20% slower epochs, by the order of their first allocations
(benchmarks/allocator_modes.py: one of five runs; none with freed memory kept).

What is freed is reused by the next allocation; the process just does not give it back,
so its peak resident memory grows by what the heap's fragmentation keeps (in the runs
above 716 -> 737-761 MB for SR-GNN, 927-932 -> 1,082-1,084 MB for SGNN-HN). Only glibc
has these knobs (mallopt); elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# mallopt takes an int: the largest top-of-heap surplus kept (2 GiB) without trimming.
NEVER_TRIM = 2**31 - 1


@functools.cache
def keep_freed_memory() -> bool:
    """Serve every block from the heap (no per-block mappings) and never trim it; True
    where glibc took both settings. Once per process."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
