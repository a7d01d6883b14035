"""Shared fixtures. Real data comes from ../shared/data (or BENCH_DATA_DIR); where it is
absent the tests that need it skip with the reason, unless BENCH_REQUIRE_SHARED=1 (set
by .ci/run), which turns that skip into a failure."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from bench.paths import default_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = default_data_dir()
    if d and Path(d).is_dir():
        return Path(d)
    reason = (
        "real datasets not found: no ../shared/data beside the checkout and BENCH_DATA_DIR unset"
    )
    if os.environ.get("BENCH_REQUIRE_SHARED") == "1":
        pytest.fail(f"BENCH_REQUIRE_SHARED=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    admin = "dbname=postgres host=127.0.0.1 port=5432 user=root"
    try:
        conn = psycopg.connect(admin, connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as e:
        if os.environ.get("BENCH_REQUIRE_SHARED") == "1":
            pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is required in CI but unreachable: {e}")
        pytest.skip(f"no PostgreSQL server reachable on 127.0.0.1:5432 ({e})")
    name = f"bench_test_{uuid.uuid4().hex[:10]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://root@127.0.0.1:5432/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


def make_sessions(lengths, n_items=10, seed=0):
    """Sessions with the given lengths and random items, as core arrays."""
    from bench.data.sessions import Sessions

    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    items = rng.integers(0, n_items, size=int(lengths.sum()))
    return Sessions(
        items=items.astype(np.int64),
        offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
        session_ids=np.arange(len(lengths)),
    )


def bench_run(*args, cwd) -> subprocess.CompletedProcess:
    """`python -m bench.run ARGS` in `cwd`, as a user runs it (output captured)."""
    return subprocess.run(
        [sys.executable, "-m", "bench.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def pytest_configure(config):
    """Under pytest-xdist (`make test` runs one worker per core), each worker and every run
    it starts get one thread: two workers with a thread per core each wait on each other's
    spinning threads, while one thread each keeps every core busy. Tests of threaded
    kernels set their thread counts themselves (tests/test_native.py)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
