"""Hydra sweeper plugin of gru4rec-bench, built on current Optuna."""
