"""A grid (`python -m bench.run -m loss=top1,bpr,ce ...`) ends with one comparison table of
its runs: the `bench.report` table of the records in its sweep folder, printed as Markdown.

A Hydra callback (conf/run.yaml, hydra.callbacks), so it runs once after every job of the
grid has returned, on the machine that launched them. Studies print their own summary
(the bench_optuna sweeper) and are left out here.
"""

from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class GridSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if "bench_optuna" in str(config.hydra.sweeper.get("_target_", "")):
            return
        from bench import terminal
        from bench.report.collect import collect
        from bench.report.tables import comparison_table, to_markdown

        sweep = Path(config.hydra.sweep.dir)
        runs = collect([sweep], []).runs
        out = terminal.console()
        if runs.empty:
            out.print(f"grid: no run of {sweep} wrote a record")
            return
        metric = str(config.eval.primary_metric)
        metrics = list(dict.fromkeys(["recall@20", metric]))
        try:
            table = comparison_table(
                runs, [m for m in metrics if m in runs], str(config.eval.tie_mode), f"Grid {sweep}"
            )
        except ValueError as e:  # e.g. runs of several protocols: each job printed its own table
            out.print(f"grid: no single comparison table ({e})")
            return
        out.print(to_markdown(table), markup=False, highlight=False)
