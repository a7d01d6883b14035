"""Saving a trained model together with its item-id map and configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import torch

from bench.atomic import atomic_path
from bench.core.config import GRU4RecConfig
from bench.core.model import GRU4RecModel
from bench.data.sessions import ItemMap


def save_model(
    path: str | Path, model: GRU4RecModel, cfg: GRU4RecConfig, item_map: ItemMap
) -> None:
    """Write atomically (temporary file, then rename) so a crash never leaves half a file."""
    path = Path(path)
    payload = {
        "config": dataclasses.asdict(cfg),
        "item_ids": [str(x) for x in item_map.ids],
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[GRU4RecModel, GRU4RecConfig, ItemMap]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    cfg = GRU4RecConfig.from_settings(payload["config"], drop_unused=True)
    item_map = ItemMap(pd.Index(payload["item_ids"], dtype=object))
    model = GRU4RecModel(len(item_map), cfg)
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), cfg, item_map
