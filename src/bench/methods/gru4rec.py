"""Session-parallel GRU4Rec, the official training (core.train), bare or inside Lightning."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from bench.core.config import GRU4RecConfig
from bench.errors import BenchError
from bench.methods.base import FitContext, Method, check_early_stopping

CUDA_GRAPHS = {"auto": None, True: True, False: False}


class SessionParallelGRU4Rec(Method):
    name = "gru4rec"
    training = "session_parallel"
    knobs = GRU4RecConfig.knobs()
    evaluates_per_epoch = True

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self.config: GRU4RecConfig = self.config_from(GRU4RecConfig, cfg)
        self.trainer_cfg = cfg.trainer
        # Checkpoints and resuming are the Lightning harness's; the bare loop keeps none.
        self.checkpoints = self.trainer_cfg.harness == "lightning"
        if self.config.patience is not None:
            check_early_stopping(cfg, self.config.stop_metric)
        self.trainer = None

    @property
    def monitors(self) -> bool:
        return self.config.patience is not None

    @classmethod
    def knob_hint(cls) -> str:
        return "see conf/model/gru4rec.yaml and the loss, sampling and optimizer groups"

    def build(self, data, device: str, seed: int):
        from bench.core.train import SessionParallelTrainer, TrainingSetupError

        try:
            self.trainer = SessionParallelTrainer(
                self.config,
                data.train,
                len(data.item_map),
                device=device,
                seed=seed,
                step=str(self.trainer_cfg.step),
                cuda_graphs=CUDA_GRAPHS[self.trainer_cfg.cuda_graphs],
            )
        except TrainingSetupError as e:
            raise BenchError(f"trainer.{e}") from None
        self.scorer = self.trainer.model
        return self.trainer

    def fit(self, data, ctx: FitContext) -> list[dict]:
        from bench.core.train import fit

        steps = self.trainer or self.build(data, ctx.device, ctx.seed)
        if self.trainer_cfg.harness == "bare":

            def on_epoch(stats):
                ctx.console.print(stats.line())
                if ctx.epoch_hook is not None:
                    ctx.epoch_hook(stats)

            return [s.as_dict() for s in fit(steps, on_epoch=on_epoch)]
        from bench.lit import GRU4RecModule, fit_module

        module = GRU4RecModule(
            steps,
            chunk_steps=int(self.trainer_cfg.chunk_steps),
            epoch_hook=ctx.epoch_hook,
            # A mid-epoch position counts chunks: a resumed run must chunk the same way.
            identity={**(ctx.identity or {}), "chunk_steps": int(self.trainer_cfg.chunk_steps)},
            monitor=self.config.stop_metric if self.monitors else None,
        )
        self.best_epoch = fit_module(module, self.config.n_epochs, ctx, self.config.patience)
        return [s.as_dict() for s in module.history]

    def settings(self) -> dict:
        return self.config.effective()

    def title(self) -> str:
        return f"GRU4Rec loss={self.config.loss} layers={self.config.layers}"

    def save(self, path: Path, data) -> None:
        from bench.core.checkpoint import save_model

        save_model(path, self.trainer.model, self.config, data.item_map)

    def training_step(self) -> dict:
        """Which training step actually ran (hand_derived.py, graphs.py) and which
        compiled kernels it used (native.py; absent where no C compiler was found)."""
        eng = self.trainer
        on_cpu = eng.device.type == "cpu"
        compiled, libs = [], []  # the kernel libraries the engine's parts hold
        if on_cpu and getattr(eng.optimizer, "kernel", None) is not None:
            compiled.append("adagrad")
            libs.append(eng.optimizer.kernel)
        if on_cpu and eng.hand_derived is not None:
            compiled += eng.hand_derived.compiled_kernels()
            libs += [eng.hand_derived.kernel] if eng.hand_derived.kernel is not None else []
        return {
            "step": "fused" if eng.hand_derived is not None else "autograd",
            "cuda_graphs": eng.graphed is not None,
            "compiled_kernels": compiled,
            # parallel loops on torch's OpenMP pool (native.openmp_flags), or serial
            "compiled_kernels_openmp": bool(libs) and all(lib.openmp for lib in libs),
        }
