"""The job's options that are settled before any data loads: the device, where checkpoints
go and the one to resume from, and whether a progress bar shows. Settled first so that a
bad option costs one line, not a loaded dataset."""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from bench.errors import BenchError
from bench.knob_types import fits

# The harness's own knobs (conf/run.yaml, conf/trainer), by kind; the choices of split and
# trainer.step are the data layer's and the trainer's own lists (check_harness_knobs).
CHOICES = {
    "trainer.accelerator": ("auto", "cpu", "gpu", "cuda"),
    "trainer.harness": ("lightning", "bare"),
}
FLAGS = {"print_config", "save_model", "eval.per_epoch"}
AUTO_FLAGS = {"trainer.progress_bar", "trainer.cuda_graphs", "trainer.checkpoint"}
POSITIVE = {"trainer.chunk_steps"}
NON_NEGATIVE = {"seed"}


def check_harness_knobs(cfg: DictConfig) -> None:
    """Type and range of every harness knob, before any method is built or data read (the
    one place they are checked: the method and the device choice rely on it)."""
    from bench.core.train import STEPS
    from bench.datasets import SPLITS

    choices = CHOICES | {"split": SPLITS, "trainer.step": STEPS}
    for key in [*choices, *FLAGS, *AUTO_FLAGS, *POSITIVE, *NON_NEGATIVE]:
        value = OmegaConf.select(cfg, key)
        if key in choices and value not in choices[key]:
            raise BenchError(f"{key}: unknown {value!r}; expected one of {', '.join(choices[key])}")
        if key in FLAGS and not fits(value, bool):
            raise BenchError(f"{key}: got {value!r}; expected true or false")
        if key in AUTO_FLAGS and not (isinstance(value, bool) or value == "auto"):
            raise BenchError(f"{key}: got {value!r}; expected auto, true or false")
        if key in POSITIVE and not (fits(value, int) and value >= 1):
            raise BenchError(f"{key}: got {value!r}; expected a positive integer")
        if key in NON_NEGATIVE and not (fits(value, int) and value >= 0):
            raise BenchError(f"{key}: got {value!r}; expected an integer >= 0")


def setting_names(tree: dict, prefix: str = "") -> list[str]:
    """Every setting of a config (as a plain dict) as its dotted path."""
    names = []
    for k, v in tree.items():
        path = f"{prefix}{k}"
        names += setting_names(v, f"{path}.") if isinstance(v, dict) and v else [path]
    return names


def added_key_error(key: str, config: DictConfig | None = None, sign: str = "+") -> str | None:
    """The one line for a `+key=value` override that adds a key nothing checks: Hydra
    suggests `+` when a misspelt knob is not in the config, and the job would otherwise run
    without it. None for the keys that are checked where they are read: a model's own
    knobs (model.params.*, against its signature), a baseline's (baseline.params.*), a
    recipe's options (dataset.options.*), GRU4Rec's knobs (against the method that runs),
    Hydra's settings and a config group. The setting of `config` closest in spelling is
    suggested."""
    from bench.methods.base import ALL_KNOBS
    from bench.paths import conf_dir

    checked = ("model.params.", "baseline.params.", "dataset.options.", "hydra.")
    if key.startswith(checked) or key in ALL_KNOBS:
        return None
    if "." not in key and (conf_dir() / key).is_dir():
        return None
    tree = OmegaConf.to_container(config, resolve=False) if config is not None else {}
    names = [n for n in setting_names(tree) if n != key and not n.startswith("hydra.")]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
    hint = f"did you mean {close[0]}?" if close else "misspelt?"
    return (
        f"{sign}{key}: not a setting that anything reads ({hint}); "
        "`python -m bench.run --cfg job` lists the settings"
    )


def refuse_bad_overrides(overrides: list[str], cfg: DictConfig, config_name: str) -> None:
    """Command-line overrides that would be overwritten or ignored: `study.*` (the
    sweeper's channel to its jobs), and a `+key` or a `++key` that adds a key nothing
    reads (`++` sets a key that exists and adds one that does not): `cfg` is the job's
    config, composed from `config_name` with the overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from bench.study import study_knob_error

    parsed = OverridesParser.create().parse_overrides(overrides)
    for o in parsed:
        key = o.key_or_group
        if key.startswith("study."):
            raise BenchError(study_knob_error(key))
        if o.is_add() and (problem := added_key_error(key, cfg)):
            raise BenchError(problem)
        if o.is_force_add() and (problem := added_key_error(key, cfg, sign="++")):
            others = [x.input_line for x in parsed if x is not o and not x.is_sweep_override()]
            if not _holds_without(key, config_name, others):
                raise BenchError(problem)


_ABSENT = object()


def _holds_without(key: str, config_name: str, overrides: list[str]) -> bool:
    """Whether the job's config has `key` when composed without the override that sets it
    (composed again only for a `++` of a key no method checks, so rarely)."""
    from hydra import compose

    base = compose(config_name, overrides=overrides)
    return OmegaConf.select(base, key, default=_ABSENT) is not _ABSENT


def pick_device(accelerator: str) -> str:
    if accelerator == "cpu":
        return "cpu"
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise BenchError(
            "trainer.accelerator: 'gpu' requested but no CUDA device is available; use cpu or auto"
        )
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_name(device: str) -> str:
    """What the record and a study's trial say the job ran on."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"cpu ({torch.get_num_threads()} threads)"


def checkpoint_dir(cfg: DictConfig, method, out_dir: Path) -> Path | None:
    """`trainer.checkpoint`: auto = on for single runs, off for study trials (short, pruned)."""
    setting = cfg.trainer.checkpoint
    on = cfg.study.trial is None if setting == "auto" else setting
    return out_dir / "checkpoints" if on and method.checkpoints else None


def resume_path(cfg: DictConfig, method) -> Path | None:
    """`resume=`: a checkpoint file, or a run directory holding checkpoints/last.ckpt."""
    if cfg.resume is None:
        return None
    if not method.checkpoints:
        raise BenchError(
            "resume: checkpoints are the Lightning harness's, kept by GRU4Rec runs with "
            f"trainer.harness=lightning; {method.name} here keeps none"
        )
    path = Path(str(cfg.resume))
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise BenchError(
            f"resume: no checkpoint at {path} (expected a .ckpt file or a run directory "
            "holding checkpoints/last.ckpt)"
        )
    return path


def want_progress_bar(setting) -> bool:
    """`trainer.progress_bar`: true | false | auto (on at a terminal, off under a sweep,
    in CI and when the output goes to a file, where the one-line epoch summary stays)."""
    if setting != "auto":
        return bool(setting)
    if os.environ.get("CI") or not sys.stdout.isatty():
        return False
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode != RunMode.MULTIRUN
    except ValueError:  # not under Hydra
        return True
