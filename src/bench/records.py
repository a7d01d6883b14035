"""Result records: one JSON per run with everything needed to trust and redo a number."""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from bench import atomic

PACKAGES = ("gru4rec-bench", "torch", "lightning", "hydra-core", "numpy", "pandas", "optuna")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(start: Path) -> str:
    """Commit of the checkout holding the code ('unknown' outside git), '+dirty' if modified."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=start,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=start,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def replace_block(path: str | Path, block: str, text: str) -> bool:
    """Put `text` between <!-- block:start --> and <!-- block:end --> in `path` (atomically),
    so a generated table in a README is never retyped; False when the markers are missing."""
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    doc = Path(path).read_text()
    if start not in doc or end not in doc:
        return False
    head, rest = doc.split(start, 1)
    tail = rest.split(end, 1)[1]
    atomic.write_text(path, f"{head}{start}\n{text}{end}{tail}")
    return True


SCHEMA_VERSION = 3


# Ranks above this are stored as it: enough for every metric at a cutoff below it.
RANK_CAP = 255
# Key of the encoded per-event ranks in a study's stored final records.
RANKS_KEY = "ranks_u8"


def encode_ranks(ranks: np.ndarray) -> str:
    """Per-event ranks as compact text (capped at RANK_CAP, one byte each, zlib, base64),
    small enough to keep in a study storage: the committed storages alone then carry what
    a paired significance test between two retrained methods needs."""
    import base64
    import zlib

    capped = np.minimum(np.nan_to_num(ranks, nan=RANK_CAP, posinf=RANK_CAP), RANK_CAP)
    if np.any(capped < 1) or np.any(capped != np.round(capped)):
        raise ValueError("expected integer ranks >= 1 (conservative or standard ties)")
    return base64.b64encode(zlib.compress(capped.astype(np.uint8).tobytes(), 9)).decode()


def decode_ranks(text: str) -> np.ndarray:
    """The inverse of encode_ranks; capped ranks come back as infinity (a miss at any
    cutoff below the cap)."""
    import base64
    import zlib

    r = np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=np.uint8).astype(np.float64)
    r[r >= RANK_CAP] = np.inf
    return r


@dataclass
class RunRecord:
    """What one run did and measured; written by `bench.run`, read by the report, the
    sweeper and the headline. `settings` holds exactly the hyperparameters of the method
    that ran (under the official names for GRU4Rec, `baseline.params` names for a
    baseline); paths are relative to the data directory or the project (bench.paths)."""

    method: str  # gru4rec | gru4rec_seq | a baseline's name
    kind: str  # gru4rec | baseline
    training: str | None  # session_parallel | bptt | None (a baseline)
    settings: dict
    dataset: dict  # statistics and files of the data the run used
    protocol: dict  # how it was evaluated, in words and numbers
    eval: dict  # the evaluation options (conf/eval)
    seed: int
    metrics: dict  # under eval.tie_mode
    metrics_by_tie_mode: dict = field(default_factory=dict)
    params: str = "default"  # default | official (conf/paramfile)
    paramfile: str | None = None
    study: dict = field(default_factory=dict)
    epochs: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    device: str = ""
    harness: str | None = None
    training_step: dict | None = None
    best_epoch: int | None = None  # the epoch early stopping restored, if any
    resumed_from: str | None = None  # the checkpoint this run continued from, if any
    overrides: list[str] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    git_commit: str = "unknown"
    ranks_file: str | None = "ranks.npy"
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunRecord:
        """A record of any schema version (older ones are converted: `_from_v1`, `_from_v2`)."""
        version = d.get("schema_version", 1)
        if version == 1:
            missing = [
                k for k in ("method", "dataset", "protocol", "metrics", "seed") if k not in d
            ]
            if missing:
                raise ValueError(f"partial record, missing {', '.join(missing)}")
            d, version = _from_v1(d), 2
        if version == 2:
            d = _from_v2(d)
        elif version != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version: got {version}, expected 1 to {SCHEMA_VERSION} (a newer bench?)"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in d
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ValueError(f"partial record, missing {', '.join(missing)}")
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def write(self, path: str | Path) -> None:
        atomic.write_json(path, self.to_dict())


def _from_v1(d: dict) -> dict:
    """Schema 1 (until 2026-11): the session-parallel settings under `gru4rec` for every
    method (including BPTT runs, whose real settings were under `seq`, and baselines), the
    whole resolved config under `config`, absolute paths. Kept: what the method used."""
    from bench.core.config import BPTTConfig, GRU4RecConfig
    from bench.paths import conf_dir, portable_dataset, portable_storage, portable_text

    config = d.get("config") or {}
    method = d["method"]
    dataset = portable_dataset(d["dataset"], config.get("data_dir"))
    params, paramfile = "default", None
    if method == "gru4rec":
        settings = GRU4RecConfig.from_settings(d["gru4rec"], drop_unused=True).effective()
        # Schema 1 applied the official paramfile of the pair whenever one existed.
        name = f"official_{dataset.get('dataset')}_{settings['loss']}"
        if (conf_dir() / "paramfile" / f"{name}.yaml").is_file():
            params, paramfile = "official", name
    elif method == "gru4rec_seq":
        seq = dict(d.get("seq") or {})
        seq["stop_metric"] = seq.pop("metric", "ndcg@10")
        network = {k: d["gru4rec"][k] for k in BPTTConfig.network_knobs() if k in d["gru4rec"]}
        settings = BPTTConfig.from_settings({**network, **seq}, drop_unused=True).effective()
    else:
        settings = dict((d.get("baseline") or {}).get("params") or {})
    study = dict(d.get("study") or {})
    study["storage"] = portable_storage(study.get("storage"))
    return {
        **{k: v for k, v in d.items() if k not in ("gru4rec", "seq", "baseline", "config")},
        "dataset": dataset,
        "settings": settings,
        "params": params,
        "paramfile": paramfile,
        "eval": config.get("eval", {}),
        "study": study,
        "overrides": [portable_text(o, config.get("data_dir")) for o in d.get("overrides", [])],
        "training": d.get("training") or ("session_parallel" if method == "gru4rec" else None),
        "schema_version": 2,
    }


def counted_from_1(epochs: list[dict]) -> list[dict]:
    """Per-epoch dicts counted from 0 (the training loops' count) as the record counts
    them, from 1."""
    return [{**e, "epoch": e["epoch"] + 1} if "epoch" in e else e for e in epochs]


def _from_v2(d: dict) -> dict:
    """Schema 2 (until 2026-12) counted epochs from 0 (`epochs[i].epoch`, `best_epoch`)
    where the console, the loggers and the pruner count from 1; schema 3 counts as they do."""
    return {
        **d,
        "epochs": counted_from_1(d.get("epochs") or []),
        "best_epoch": d["best_epoch"] + 1 if d.get("best_epoch") is not None else None,
        "schema_version": SCHEMA_VERSION,
    }
