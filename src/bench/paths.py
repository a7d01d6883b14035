"""Where things are: the project, its configs, the data; and paths written relative to them.

Records and study storages are committed and read on other machines, so they never hold
an absolute path of the machine that wrote them: a data file is written as
`${data_dir}/<path under the data directory>`, a project file relative to the project.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def _project_root() -> Path:
    """The checkout this package runs from (`make` installs it editable); an installed copy
    (a wheel in site-packages) belongs to no checkout, and then the current directory is
    the project, where Hydra already writes its run directories: results, study storages
    and logs land there, never inside the environment."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "conf").is_dir():
        return checkout
    return Path.cwd()


PROJECT_ROOT = _project_root()
DATA_DIR_PREFIX = "${data_dir}/"
CACHE_DIR_PREFIX = "${cache_dir}/"  # prepared recipe data (bench.data.prepare)
PROJECT_FOLDERS = ("results", "sweeps", "benchmarks")  # where a run's files live in a project


def conf_dir() -> Path:
    """Configs ship inside the wheel (bench/conf); an editable install reads the repo's conf/."""
    packaged = Path(__file__).resolve().parent / "conf"
    return packaged if packaged.is_dir() else PROJECT_ROOT / "conf"


def default_cache_dir() -> Path:
    """The one cache folder (prepared recipe data, compiled kernels, downloads):
    BENCH_CACHE_DIR, else gru4rec-bench in XDG_CACHE_HOME or ~/.cache."""
    env = os.environ.get("BENCH_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gru4rec-bench"


def default_data_dir() -> str:
    """BENCH_DATA_DIR, else a `shared/data` beside the checkout, else '' (unset)."""
    env = os.environ.get("BENCH_DATA_DIR")
    if env:
        return env
    for base in (PROJECT_ROOT, Path.cwd()):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return str(cand)
    return ""


def portable_path(path: str | None, data_dir: str | None = None) -> str | None:
    """`path` relative to the data directory (as `${data_dir}/...`) or to the project;
    unchanged when it lies under neither (e.g. a user's own file elsewhere)."""
    if not path or not os.path.isabs(path):
        return path
    p = Path(path).resolve()
    for base, prefix in (
        (data_dir or default_data_dir(), DATA_DIR_PREFIX),
        (str(PROJECT_ROOT), ""),
    ):
        if not base:
            continue
        try:
            return prefix + str(p.relative_to(Path(base).resolve()))
        except ValueError:
            continue
    # Another machine's or checkout's data directory or project (e.g. a worktree in /tmp):
    # the part under shared/data, or from a project folder on, identifies the file.
    parts = p.parts
    for i in range(len(parts) - 1):
        if parts[i] == "shared" and parts[i + 1] == "data":
            return DATA_DIR_PREFIX + "/".join(parts[i + 2 :])
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] in PROJECT_FOLDERS:
            return "/".join(parts[i:])
    return path


def portable_dataset(stats: dict, data_dir: str | None = None) -> dict:
    """A dataset block of a record with its file paths portable (single paths, and the
    compound descriptions of prepared recipe data)."""
    out = dict(stats)
    for key in ("train_path", "test_path"):
        path = portable_path(out.get(key), data_dir)
        out[key] = path and portable_text(path, data_dir)
    return out


def portable_storage(url: str | None) -> str | None:
    """An sqlite URL with an absolute path inside the project, made relative to it."""
    if not url or not url.startswith("sqlite:////"):
        return url
    rel = portable_path(url[len("sqlite:///") :])
    return url if rel.startswith("/") else f"sqlite:///{rel}"


def portable_text(text: str, data_dir: str | None = None) -> str:
    """Absolute data, cache and project paths inside free text (e.g. a command-line override
    such as `study.storage='sqlite:////abs/sweeps/x.db'`, or a recipe's prepared files)
    written as portable_path writes them; the prepared-data cache as `${cache_dir}/`."""
    bases = (
        (data_dir or default_data_dir(), DATA_DIR_PREFIX),
        (str(default_cache_dir()), CACHE_DIR_PREFIX),
        (str(PROJECT_ROOT), ""),
    )
    for base, prefix in bases:
        if base:
            text = text.replace(str(Path(base).resolve()) + "/", prefix)
    text = re.sub(r"/[^\s'\"=]*/\.cache/gru4rec-bench/", lambda _: CACHE_DIR_PREFIX, text)
    return re.sub(r"/[^\s'\"=]*/shared/data/", lambda _: DATA_DIR_PREFIX, text)
