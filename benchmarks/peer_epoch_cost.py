"""What an epoch of a neural peer costs here, before any study of it is planned.

For each peer (`--models`), SR-GNN split and thread count: the peer's default settings
(SR-GNN: batch 100, hidden 100; SGNN-HN: batch 256, d 256, the last 10 items; NARM: batch
512, embedding 50, hidden 100, the first 19 items) on the full training set, `--steps`
timed training steps (after a warm-up) in a random order of the training prefixes, hence
the seconds per epoch; the GEMM floor, the output layer's three products alone (scores,
and the gradients of the session embedding and of the item table) at the same shapes (the
item table's width), timed as torch computes them and as the compiled split product does,
the faster counted; for the graph peers the share of a step spent building the session
graphs; and one evaluation of the test set through the shared evaluator. Written to
benchmarks/results/peer_epoch_cost.json.

  python benchmarks/peer_epoch_cost.py --models sgnnhn   # with the machine otherwise idle

Rows of the peers not measured in a run are kept from the JSON as they were.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from omegaconf import OmegaConf

from bench.core import native
from bench.core.evaluate import evaluate
from bench.core.prefixes import PrefixScorer, TrainingPrefixes
from bench.datasets import load_dataset
from bench.paths import conf_dir, default_data_dir
from bench.peers.narm import NARM
from bench.peers.sgnnhn import SGNNHN
from bench.peers.srgnn import SRGNN, session_graphs

OUT = Path(__file__).resolve().parent / "results" / "peer_epoch_cost.json"
SPLITS = ("diginetica_srgnn", "yoochoose1_64")
# name -> (class, batch size of its defaults (conf/model/<name>.yaml), its what-line)
PEERS = {
    "srgnn": (SRGNN, 100, "SR-GNN, published settings (batch 100, hidden 100, step 1)"),
    "sgnnhn": (SGNNHN, 256, "SGNN-HN, defaults (batch 256, d 256, step 1, last 10 items)"),
    "narm": (NARM, 512, "NARM, published settings (batch 512, embedding 50, hidden 100)"),
}
GRAPH_PEERS = ("srgnn", "sgnnhn")


def dataset(name: str):
    cfg = OmegaConf.load(conf_dir() / "dataset" / f"{name}.yaml")
    cfg.data_dir = default_data_dir()
    ds = OmegaConf.to_container(cfg, resolve=True)
    ds.pop("data_dir")
    return load_dataset(ds, default_data_dir(), "final")


def best_of(fn, repeats: int) -> float:
    """Seconds of one call, the best of `repeats` (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def gemm_floor(n_items: int, batch: int, hidden: int, repeats: int) -> dict:
    a, table = torch.randn(batch, hidden), torch.randn(n_items, hidden)
    grad = torch.randn(batch, n_items)

    def torch_products():
        torch.mm(a, table.T), torch.mm(grad, table), torch.mm(grad.T, a)

    out = {"torch_s": best_of(torch_products, repeats)}
    lib = native.kernel()
    if lib is not None and lib.blas:

        def split_products():
            native.matmul(lib, a, table, trans_b=True)
            native.matmul(lib, grad, table)
            native.matmul(lib, grad, a, trans_a=True)

        out["compiled_split_s"] = best_of(split_products, repeats)
    out["floor_s"] = min(out.values())
    return out


def peer_and_batches(peer: str, data, count: int):
    """(model, optimizer, training prefixes, `count` batches of them): the peer with its
    defaults, seeded, and its batches in one seeded random order of the prefixes."""
    torch.manual_seed(0)
    cls, batch, _ = PEERS[peer]
    model = cls(len(data.item_map))
    conf = model.configure_optimizers()
    opt = conf["optimizer"] if isinstance(conf, dict) else conf
    pairs = TrainingPrefixes(data.train, model.max_prefix, torch.device("cpu"))
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0))
    batches = [pairs.batch(order[i * batch : (i + 1) * batch]) for i in range(count)]
    return model, opt, pairs, batches


def train_steps(model, opt, batches) -> None:
    """One training step per batch, as the peer's fit takes it."""
    for b in batches:
        opt.zero_grad()
        model.loss(*b).backward()
        opt.step()


def measure(peer: str, name: str, threads: int, steps: int, repeats: int) -> dict:
    # imported here: peer_step_ab.py runs this module's helpers on code from before it
    from bench.allocator import keep_freed_memory

    keep_freed_memory()  # as bench.run does
    torch.set_num_threads(threads)
    data = dataset(name)
    n_items = len(data.item_map)
    batch = PEERS[peer][1]
    model, opt, pairs, batches = peer_and_batches(peer, data, steps + 10)
    train_steps(model, opt, batches[:10])
    t0 = time.perf_counter()
    train_steps(model, opt, batches[10:])
    per_step = (time.perf_counter() - t0) / steps
    graphs = None
    if peer in GRAPH_PEERS:
        t0 = time.perf_counter()
        for b in batches[10:]:
            session_graphs(b[0], b[1])
        graphs = (time.perf_counter() - t0) / steps / per_step
    floor = gemm_floor(n_items, batch, model.embedding.weight.shape[1], repeats)
    steps_per_epoch = -(-len(pairs) // batch)
    t0 = time.perf_counter()
    result = evaluate(
        PrefixScorer(model, int(data.test.lengths.max())), data.test, [20], "conservative", 512
    )
    eval_s = time.perf_counter() - t0
    return {
        "model": peer,
        "batch_size": batch,
        "dataset": name,
        "threads": threads,
        "items": n_items,
        "training_prefixes": len(pairs),
        "steps_per_epoch": steps_per_epoch,
        "ms_per_step": per_step * 1e3,
        "epoch_minutes": per_step * steps_per_epoch / 60,
        "gemm_floor_ms_per_step": floor["floor_s"] * 1e3,
        "gemm_floor": {k: v * 1e3 for k, v in floor.items()},
        "share_of_gemm_floor": floor["floor_s"] / per_step,
        "graph_building_share": graphs,
        "evaluation_s": eval_s,
        "evaluated_events": result.n_events,
    }


SPLIT_TITLES = {"diginetica_srgnn": "Diginetica", "yoochoose1_64": "yoochoose1/64"}


def share(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def table(report: dict) -> str:
    """The README's `peer-epoch-cost` block."""
    lines = [
        "| peer | split | training prefixes | items | threads | batch | ms per step "
        "| minutes per epoch | share of the GEMM floor | graph building | one test evaluation |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {PEERS[r['model']][0].title} | {SPLIT_TITLES[r['dataset']]} | "
            f"{r['training_prefixes']:,} | {r['items']:,} | {r['threads']} | {r['batch_size']} | "
            f"{r['ms_per_step']:.1f} | {r['epoch_minutes']:.1f} | {r['share_of_gemm_floor']:.0%} | "
            f"{share(r['graph_building_share'])} | {r['evaluation_s']:.1f} s |"
        )
    where = "; ".join(
        f"{PEERS[m][0].title} on {report['machine'][m]}, {d[:10]}"
        for m, d in report["date"].items()
    )
    return "\n".join(lines) + f"\n\nMeasured: {where}.\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=list(PEERS), default=list(PEERS))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--readme", type=Path, help="write the table into this README's block")
    ap.add_argument("--table-only", action="store_true", help="redraw the table from the JSON")
    args = ap.parse_args()
    if not args.table_only:
        run(args)
    if args.readme:
        from bench.records import replace_block

        if not replace_block(args.readme, "peer-epoch-cost", table(json.loads(OUT.read_text()))):
            raise SystemExit(f"{args.readme}: no <!-- peer-epoch-cost:start/end --> block")


def run(args) -> None:
    old = json.loads(OUT.read_text()) if OUT.exists() else {"rows": [], "date": {}, "machine": {}}
    machine = (
        f"{native.cpu_name()} ({platform.machine()}), {torch.get_num_threads()} threads max "
        f"here, torch {torch.__version__}"
    )
    rows = [r for r in old["rows"] if r["model"] not in args.models]
    for peer in args.models:
        for name in SPLITS:
            for threads in args.threads:
                rows.append(measure(peer, name, threads, args.steps, args.repeats))
                r = rows[-1]
                print(
                    f"{peer} {name} {threads} thread(s): {r['ms_per_step']:.1f} ms/step, "
                    f"{r['epoch_minutes']:.1f} min/epoch, {r['share_of_gemm_floor']:.0%} of the "
                    f"GEMM floor, graphs {share(r['graph_building_share'])}, "
                    f"evaluation {r['evaluation_s']:.1f} s",
                    flush=True,
                )
    OUT.write_text(
        json.dumps(
            {
                "what": {p: PEERS[p][2] for p in PEERS}
                | {"step": "batch gather, graphs, forward, backward, fused Adam"},
                "machine": old["machine"] | dict.fromkeys(args.models, machine),
                "date": old["date"]
                | {
                    p: datetime.now(timezone.utc).isoformat(timespec="seconds") for p in args.models
                },
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
