"""bench.allocator: with freed memory kept, a large buffer allocated anew every step stops
costing page faults; without it, every allocation faults all its pages in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the allocator settings are glibc's (mallopt); elsewhere they do nothing",
)

# 40 steps that each allocate, write and free a 48 MB tensor, like a peer's scores buffer;
# prints the minor page faults of the last 20 (after the heap has grown once).
CHURN = """
import resource, sys, torch
from bench.allocator import keep_freed_memory
print(keep_freed_memory() if sys.argv[1] == "keep" else False)
def step():
    t = torch.empty(12_000_000)
    t.fill_(1.0)
for _ in range(20):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def churn_faults(mode: str) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1])


@glibc
def test_kept_memory_serves_large_buffers_without_page_faults():
    kept, faults = churn_faults("keep")
    assert kept
    assert faults < 100
    taken, faults_default = churn_faults("default")
    assert not taken
    # glibc's default: a fresh mapping every step, its pages faulted in again (here 9,560
    # faults for the 20 steps: part of each buffer came in transparent huge pages)
    assert faults_default > 20 * 100


class Stop(Exception):
    pass


def test_the_run_entry_point_keeps_freed_memory(monkeypatch, tmp_path):
    """bench.run's job asks for it first, before the data and the method are loaded."""
    import bench.run

    calls = []
    monkeypatch.setattr(bench.run.allocator, "keep_freed_memory", lambda: calls.append(1))

    def settle(*args):
        assert calls == [1]
        raise Stop

    monkeypatch.setattr(bench.run, "settle", settle)
    with pytest.raises(Stop):
        bench.run.run_job(OmegaConf.create({"print_config": False}), tmp_path)
