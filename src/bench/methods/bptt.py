"""Sequence-aware GRU4Rec over user histories (core.bptt): leave-one-out datasets only."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from bench.core.config import BPTTConfig
from bench.core.metrics import metric_names
from bench.errors import BenchError
from bench.methods.base import FitContext, Method


class SequenceGRU4Rec(Method):
    name = "gru4rec_seq"
    training = "bptt"
    knobs = BPTTConfig.knobs()
    checkpoints = True

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self.config: BPTTConfig = self.config_from(BPTTConfig, cfg)
        if self.config.stop_metric not in metric_names(cfg.eval.cutoffs):
            raise BenchError(
                f"stop_metric: '{self.config.stop_metric}' is not computed at eval.cutoffs "
                f"{list(cfg.eval.cutoffs)}"
            )
        if cfg.split != "final":
            raise BenchError(
                "split: model=gru4rec_seq tunes by early stopping on each user's validation "
                "item; use split=final"
            )
        self.eval_cfg = cfg.eval
        self.model = None

    @classmethod
    def knob_hint(cls) -> str:
        return "see conf/model/gru4rec_seq.yaml (always full or sampled cross-entropy with Adam)"

    def load_data(self, cfg: DictConfig):
        from bench.datasets import load_user_histories

        data, self.histories, self.validation = load_user_histories(
            OmegaConf.to_object(cfg.dataset), cfg.data_dir
        )
        return data

    @property
    def monitors(self) -> bool:
        return True  # on each user's validation item, inside the module

    def fit(self, data, ctx: FitContext) -> list[dict]:
        from bench.core.evaluate import evaluate
        from bench.core.model import GRU4RecModel
        from bench.lit import SequenceModule, fit_module

        torch.manual_seed(ctx.seed)  # dropout masks draw from the global generator
        self.model = GRU4RecModel(len(data.item_map), self.config)
        self.model.reset_parameters(torch.Generator().manual_seed(ctx.seed))
        self.model.to(ctx.device)
        self.scorer = self.model

        def validate():
            return evaluate(
                self.model,
                self.validation,
                list(self.eval_cfg.cutoffs),
                self.eval_cfg.tie_mode,
                int(self.eval_cfg.batch_size),
                ctx.device,
                filter_seen=ctx.filter_seen,
            ).metrics

        module = SequenceModule(
            self.model, self.histories, self.config, validate, ctx.seed, ctx.identity
        )
        self.best_epoch = fit_module(module, self.config.n_epochs, ctx, self.config.patience)
        return [s.as_dict() for s in module.history]

    def settings(self) -> dict:
        return self.config.effective()

    def title(self) -> str:
        return f"GRU4Rec BPTT over user histories layers={self.config.layers}"
