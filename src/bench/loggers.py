"""Experiment loggers: Lightning's CSV, TensorBoard and MLflow loggers, chosen with
`logger=csv|tensorboard|mlflow|none` or a list (`logger=[csv,mlflow]`).

Every method logs the same things through them, whichever harness trains it: the
effective hyperparameters of the method that ran, per epoch the training loss, events/s
and (where evaluated) validation metrics, and the final metrics. Steps are epochs
(1-based), the same for every logger and method; a metric K@N is named K_at_N (MLflow
allows no "@"). Under a study each trial is one run of
the study's experiment, tagged with the study name, the trial number and the phase, so
a tracking UI groups and filters them.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf

from bench.errors import BenchError, first_line
from bench.paths import PROJECT_ROOT

KNOWN = ("csv", "tensorboard", "mlflow")
DEFAULT_EXPERIMENT = "gru4rec-bench"


def _project_path(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else PROJECT_ROOT / p


def run_identity(cfg: DictConfig) -> tuple[str, str, dict[str, str]]:
    """(experiment, run name, tags) of this job."""
    study = cfg.study
    if study.name:
        trial = f"trial_{study.trial}" if study.trial is not None else f"final_seed{cfg.seed}"
        tags = {"study": str(study.name), "phase": str(study.phase or "tune")}
        if study.trial is not None:
            tags["trial"] = str(study.trial)
        return str(study.name), trial, tags
    name = OmegaConf.select(cfg, "dataset.name") or "run"
    return DEFAULT_EXPERIMENT, f"{cfg.method}_{name}_seed{cfg.seed}", {}


def _writable_dir(logger: str, path) -> Path:
    """The logger's folder, made now: Lightning would fail on it only at the first write,
    after the data has loaded."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BenchError(
            f"logger.{logger}.save_dir: cannot create {path} ({e.strerror or type(e).__name__})"
        ) from None
    return Path(path)


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """A tracking server that answers no connection is one line now: MLflow's client
    retries with back-off for about four minutes before it gives up."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise BenchError(
            f"logger.mlflow.tracking_uri: cannot reach {parts.hostname}:{port} ({reason})"
        ) from None


class RunLoggers:
    """The chosen Lightning loggers, fed by bench.run."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        node = cfg.get("logger")
        chosen = OmegaConf.to_container(node, resolve=True) if node else {}
        unknown = sorted(set(chosen) - set(KNOWN))
        if unknown:
            raise BenchError(f"logger: unknown '{unknown[0]}'; expected {', '.join(KNOWN)} or none")
        experiment, run_name, tags = run_identity(cfg)
        self.loggers = []
        try:
            if "csv" in chosen:
                from lightning.pytorch.loggers import CSVLogger

                save = _writable_dir("csv", chosen["csv"].get("save_dir") or run_dir / "logs")
                self.loggers.append(CSVLogger(save_dir=str(save), name="", version=""))
            if "tensorboard" in chosen:
                from lightning.pytorch.loggers import TensorBoardLogger

                where = _project_path(chosen["tensorboard"]["save_dir"])
                save = _writable_dir("tensorboard", where)
                self.loggers.append(
                    TensorBoardLogger(
                        save_dir=str(save),
                        name=experiment,
                        version=run_name,
                        default_hp_metric=False,
                    )
                )
            if "mlflow" in chosen:
                from lightning.pytorch.loggers import MLFlowLogger

                uri = str(chosen["mlflow"]["tracking_uri"])
                if "://" not in uri:  # a SQLite file (MLflow 3 keeps no file-store runs)
                    path = _project_path(uri)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    uri = f"sqlite:///{path}"
                check_reachable(uri)
                self.loggers.append(
                    MLFlowLogger(
                        experiment_name=chosen["mlflow"].get("experiment") or experiment,
                        run_name=run_name,
                        tracking_uri=uri,
                        tags=tags or None,
                    )
                )
                _ = self.loggers[-1].run_id  # opens the store and starts the run here, now
        except BenchError:
            raise
        except ModuleNotFoundError as e:
            raise BenchError(
                f"logger: {e.name} is not installed; install the loggers extra (pip install -e "
                "'.[loggers]')"
            ) from None
        except Exception as e:  # a tracking store that cannot be opened or written
            first = first_line(e)
            raise BenchError(f"logger: cannot start {sorted(chosen)} ({first})") from None

    def hyperparameters(self, params: dict) -> None:
        for lg in self.loggers:
            lg.log_hyperparams(params)

    def metrics(self, values: dict, epoch: int) -> None:
        """`values` at epoch `epoch` (1-based; the final metrics at the last epoch)."""
        # MLflow refuses "@" in a metric name: every logger gets mrr_at_20 for mrr@20.
        numbers = {
            k.replace("@", "_at_"): float(v)
            for k, v in values.items()
            if isinstance(v, (int, float))
        }
        for lg in self.loggers:
            lg.log_metrics(numbers, step=epoch)

    def close(self, status: str = "success") -> None:
        for lg in self.loggers:
            lg.save()
            lg.finalize(status)
