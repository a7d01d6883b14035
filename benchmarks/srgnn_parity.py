"""SR-GNN here beside the authors' code (CRIPAC-DIG/SR-GNN, pytorch_code/), on the same data.

Three checks, written to benchmarks/results/srgnn_parity.json:
1. Same weights: the authors' SessionGraph given our model's parameters scores a batch of
   Diginetica test prefixes, and its loss and gradients are compared with ours.
2. Lockstep: both start from the same weights and train `--lockstep-epochs` whole epochs
   on the same batches of the sample's training prefixes (one shuffle per epoch, shared),
   each through its own code (their forward, loss, Adam and learning-rate decay; ours);
   the losses step by step, the parameters at the end, and after every epoch each
   model's Recall@20 and MRR@20 under its own evaluation (their train_test's top-20 loop;
   ours the shared evaluator). With the randomness of initialisation and batching taken
   out, what remains between the two is the code (and float summation order). Their
   utils.py imports networkx for a function training never calls: a stand-in module is
   put in its place when networkx is not installed.
3. Same data and settings, trained: the first `--train-sessions` training sessions of
   Diginetica (SR-GNN split) and the first `--test-sessions` test sessions restricted to
   their items, written in both forms (our session text, their (prefix, label) pickles with
   item ids 1..n); both train `--epochs` epochs with the published settings for each of
   `--seeds` seeds and report Recall@20 and MRR@20 after every epoch on the same test
   pairs (theirs from their own train_test, ours from the shared evaluator).

The authors' code is read from a checkout given by --authors and run by --authors-python
(it needs torch, numpy and networkx); nothing of it is copied here.

  python benchmarks/srgnn_parity.py --authors ~/src/SR-GNN --authors-python ~/venvs/srgnn/bin/python
"""

from __future__ import annotations

import argparse
import gzip
import json
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.data.pickles import augment  # SR-GNN's (prefix, label) pairs

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "srgnn_parity.json"

AUTHORS_TRAINING = """
import json, sys, argparse, pickle, numpy as np, torch
sys.path.insert(0, sys.argv[1])
from model import SessionGraph, train_test
from utils import Data
data_dir, seed, epochs, n_node = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
np.random.seed(seed); torch.manual_seed(seed)
opt = argparse.Namespace(batchSize=100, hiddenSize=100, lr=0.001, lr_dc=0.1, lr_dc_step=3,
                         l2=1e-5, step=1, nonhybrid=False)
train = Data(pickle.load(open(data_dir + "/train.txt", "rb")), shuffle=True)
test = Data(pickle.load(open(data_dir + "/test.txt", "rb")), shuffle=False)
model = SessionGraph(opt, n_node)
for epoch in range(epochs):
    hit, mrr = train_test(model, train, test)
    result = {"epoch": epoch + 1, "recall@20": hit / 100, "mrr@20": mrr / 100}
    print("RESULT", json.dumps(result), flush=True)
"""

AUTHORS_SAME_WEIGHTS = """
import json, sys, argparse, pickle, numpy as np, torch
sys.path.insert(0, sys.argv[1])
from model import SessionGraph, forward
from utils import Data
state = torch.load(sys.argv[2])
prefixes, targets = pickle.load(open(sys.argv[3], "rb"))
n_items, hidden = state["embedding.weight"].shape
opt = argparse.Namespace(batchSize=len(prefixes), hiddenSize=hidden, lr=0.001, lr_dc=0.1,
                         lr_dc_step=3, l2=1e-5, step=1, nonhybrid=False)
model = SessionGraph(opt, n_items + 1)
params = dict(model.named_parameters())
with torch.no_grad():
    params["embedding.weight"][1:] = state["embedding.weight"]
    for k, v in state.items():
        if k != "embedding.weight":
            params[k].copy_(v)
data = Data(([[i + 1 for i in p] for p in prefixes], [t + 1 for t in targets]), shuffle=False)
_, scores = forward(model, np.arange(len(prefixes)), data)
loss = model.loss_function(scores, torch.tensor(targets))
loss.backward()
grads = {k: (p.grad[1:] if k == "embedding.weight" else p.grad) for k, p in params.items()
         if p.grad is not None}
torch.save({"scores": scores.detach(), "loss": loss.detach(), "grads": grads}, sys.argv[4])
"""


def padded(prefixes: list[list[int]]):
    """(B x L item indices right-padded with PAD, lengths): a batch as the peers take it."""
    import torch

    from bench.api import PAD

    width = max(map(len, prefixes))
    rows = [p + [PAD] * (width - len(p)) for p in prefixes]
    return torch.tensor(rows), torch.tensor([len(p) for p in prefixes])


def read_sessions(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt") as f:
        return [line.split() for line in f if line.strip()]


def lockstep(args, sample_dir: Path, epochs: int) -> dict:
    """Same initial weights, same batches, each side's own training and evaluation code,
    for whole epochs (each a new shuffle shared by both sides, the learning-rate decay
    stepped as each side's code steps it), both sides evaluated after every epoch."""
    import importlib.util
    import types

    import torch

    from bench.datasets import load_dataset
    from bench.peers.srgnn import SRGNN

    code = str(Path(args.authors) / "pytorch_code")
    sys.path.insert(0, code)
    if importlib.util.find_spec("networkx") is None:
        sys.modules["networkx"] = types.ModuleType("networkx")
    import model as authors_model  # their pytorch_code/model.py
    import utils as authors_utils  # their pytorch_code/utils.py

    data = load_dataset(
        {
            "name": "sample",
            "kind": "files",
            "format": "auto",
            "train": str(sample_dir / "train_sessions.txt.gz"),
            "test": str(sample_dir / "test_sessions.txt.gz"),
        },
        "",
        "final",
    )
    with open(sample_dir / "train.txt", "rb") as f:
        prefixes, labels = pickle.load(f)  # their ids: our index + 1 (both by first appearance)
    with open(sample_dir / "test.txt", "rb") as f:
        test = authors_utils.Data(pickle.load(f), shuffle=False)
    n_items = len(data.item_map)
    torch.manual_seed(0)
    ours_model = SRGNN(n_items)
    opt = argparse.Namespace(
        hiddenSize=100,
        batchSize=100,
        nonhybrid=False,
        step=1,
        lr=1e-3,
        l2=1e-5,
        lr_dc_step=3,
        lr_dc=0.1,
    )
    theirs_model = authors_model.SessionGraph(opt, n_items + 1)
    theirs_params = dict(theirs_model.named_parameters())
    with torch.no_grad():
        for k, v in ours_model.state_dict().items():
            (theirs_params[k][1:] if k == "embedding.weight" else theirs_params[k]).copy_(v)
    ours_opt = ours_model.configure_optimizers()
    train = authors_utils.Data((prefixes, labels), shuffle=False)
    rng = np.random.default_rng(0)
    loss_gap, per_epoch, n_steps = 0.0, [], 0
    for epoch in range(epochs):
        theirs_model.scheduler.step()  # as their train_test does, before the epoch
        theirs_model.train()
        order = rng.permutation(len(prefixes))
        for idx in np.array_split(order, -(-len(order) // 100)):
            theirs_model.optimizer.zero_grad()
            targets, scores = authors_model.forward(theirs_model, idx, train)
            theirs_loss = theirs_model.loss_function(scores, torch.tensor(targets).long() - 1)
            theirs_loss.backward()
            theirs_model.optimizer.step()
            x, lengths = padded([[i - 1 for i in prefixes[j]] for j in idx])
            ours_loss = ours_model.loss(x, lengths, torch.tensor([labels[j] - 1 for j in idx]))
            ours_opt["optimizer"].zero_grad()
            ours_loss.backward()
            ours_opt["optimizer"].step()
            loss_gap = max(loss_gap, abs(theirs_loss.item() - ours_loss.item()))
            n_steps += 1
        ours_opt["lr_scheduler"].step()  # as Lightning steps it, after the epoch
        per_epoch.append(
            {"epoch": epoch + 1}
            | lockstep_metrics(authors_model, theirs_model, test, ours_model, data)
        )
        print("lockstep", per_epoch[-1], flush=True)
    params = dict(ours_model.named_parameters())
    param_gap = max(
        float((params[k] - (p[1:] if k == "embedding.weight" else p)).abs().max())
        for k, p in theirs_params.items()
        if k in params
    )
    last = per_epoch[-1]
    return {
        "epochs": epochs,
        "steps": n_steps,
        "batch": 100,
        "max_abs_loss_difference": loss_gap,
        "final_loss_ours": ours_loss.item(),
        "final_loss_theirs": theirs_loss.item(),
        "max_abs_parameter_difference_at_end": param_gap,
        "per_epoch": per_epoch,
        "relative_difference_at_end": {
            m: (last["ours"][m] - last["theirs"][m]) / last["theirs"][m]
            for m in ("recall@20", "mrr@20")
        },
    }


def lockstep_metrics(authors_model, theirs_model, test, ours_model, data) -> dict:
    """Recall@20 and MRR@20 of each side under its own evaluation: their train_test's
    top-20 loop, ours the shared evaluator."""
    import torch

    from bench.core.evaluate import evaluate
    from bench.core.prefixes import PrefixScorer

    theirs_model.eval()
    hits, rrs = [], []
    with torch.no_grad():
        for idx in test.generate_batch(100):
            targets, scores = authors_model.forward(theirs_model, idx, test)
            for target, top in zip(targets, scores.topk(20)[1].numpy()):
                where = np.flatnonzero(top == target - 1)
                hits.append(len(where) > 0)
                rrs.append(1.0 / (where[0] + 1) if len(where) else 0.0)
    ours_model.eval()
    ours = evaluate(
        PrefixScorer(ours_model, int(data.test.lengths.max())), data.test, [20], "standard", 512
    ).metrics
    ours_model.train()
    return {
        "theirs": {"recall@20": float(np.mean(hits)), "mrr@20": float(np.mean(rrs))},
        "ours": {"recall@20": ours["recall@20"], "mrr@20": ours["mrr@20"]},
    }


def make_sample(shared: Path, n_train: int, n_test: int, out: Path) -> dict:
    train = read_sessions(shared / "diginetica/srgnn/train_sessions.txt.gz")[:n_train]
    items = {i: k + 1 for k, i in enumerate(dict.fromkeys(i for s in train for i in s))}
    test = [
        kept
        for s in read_sessions(shared / "diginetica/srgnn/test_sessions.txt.gz")[:n_test]
        if len(kept := [i for i in s if i in items]) >= 2
    ]
    for name, sessions in (("train", train), ("test", test)):
        with gzip.open(out / f"{name}_sessions.txt.gz", "wt") as f:
            f.writelines(" ".join(s) + "\n" for s in sessions)
        ids = [[items[i] for i in s] for s in sessions]
        with open(out / f"{name}.txt", "wb") as f:
            pickle.dump(augment(ids), f)
    return {
        "train_sessions": len(train),
        "test_sessions": len(test),
        "items": len(items),
        "train_pairs": len(augment(train)[0]),
        "test_pairs": len(augment(test)[0]),
    }


def ours(sample: Path, seed: int, epochs: int, run_dir: Path) -> list[dict]:
    cmd = [
        sys.executable,
        "-m",
        "bench.run",
        "model=srgnn",
        "dataset=files",
        f"dataset.train={sample / 'train_sessions.txt.gz'}",
        f"dataset.test={sample / 'test_sessions.txt.gz'}",
        f"n_epochs={epochs}",
        "eval.per_epoch=true",
        "eval.tie_mode=standard",
        f"seed={seed}",
        "save_model=false",
        "trainer.checkpoint=false",
        f"hydra.run.dir={run_dir}",
    ]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    record = json.loads((run_dir / "result.json").read_text())
    return [
        {"epoch": e["epoch"], "recall@20": e["eval"]["recall@20"], "mrr@20": e["eval"]["mrr@20"]}
        for e in record["epochs"]
    ]


def theirs(args, sample: Path, seed: int, epochs: int, n_node: int) -> list[dict]:
    code = str(Path(args.authors) / "pytorch_code")
    p = subprocess.run(
        [
            args.authors_python,
            "-c",
            AUTHORS_TRAINING,
            code,
            str(sample),
            str(seed),
            str(epochs),
            str(n_node),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return [json.loads(line[7:]) for line in p.stdout.splitlines() if line.startswith("RESULT ")]


def same_weights(args, shared: Path, tmp: Path) -> dict:
    """Our model's parameters in their SessionGraph: scores, loss and gradients compared."""
    import torch

    from bench.peers.srgnn import SRGNN

    sessions = read_sessions(shared / "diginetica/srgnn/test_sessions.txt.gz")[:60]
    items = {i: k for k, i in enumerate(dict.fromkeys(i for s in sessions for i in s))}
    prefixes, targets = augment([[items[i] for i in s] for s in sessions])
    prefixes, targets = prefixes[:200], targets[:200]
    torch.manual_seed(0)
    model = SRGNN(len(items))
    torch.save(model.state_dict(), tmp / "state.pt")
    with open(tmp / "batch.pkl", "wb") as f:
        pickle.dump((prefixes, targets), f)
    code = str(Path(args.authors) / "pytorch_code")
    subprocess.run(
        [
            args.authors_python,
            "-c",
            AUTHORS_SAME_WEIGHTS,
            code,
            str(tmp / "state.pt"),
            str(tmp / "batch.pkl"),
            str(tmp / "theirs.pt"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    ref = torch.load(tmp / "theirs.pt")
    x, lengths = padded(prefixes)
    scores = model.score(x, lengths)
    loss = model.loss(x, lengths, torch.tensor(targets))
    loss.backward()
    grads = {k: float((p.grad - ref["grads"][k]).abs().max()) for k, p in model.named_parameters()}
    return {
        "prefixes": len(prefixes),
        "items": len(items),
        "max_abs_score_difference": float((scores.detach() - ref["scores"]).abs().max()),
        "max_abs_score": float(ref["scores"].abs().max()),
        "loss_ours": float(loss.detach()),
        "loss_theirs": float(ref["loss"]),
        "max_abs_gradient_difference": max(grads.values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors", required=True, help="checkout of CRIPAC-DIG/SR-GNN")
    ap.add_argument("--authors-python", default=sys.executable)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--train-sessions", type=int, default=40000)
    ap.add_argument("--test-sessions", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument(
        "--seeds",
        type=int,
        nargs="*",
        default=[1, 2, 3, 4, 5],
        help="seeds of check 3 (none: checks 1 and 2 only, the rest of the JSON kept)",
    )
    ap.add_argument("--lockstep-epochs", type=int, default=2)
    args = ap.parse_args()
    shared = Path(args.shared)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        weights = same_weights(args, shared, tmp)
        print("same weights:", weights, flush=True)
        sample = make_sample(shared, args.train_sessions, args.test_sessions, tmp)
        steps = lockstep(args, tmp, args.lockstep_epochs) | {"sample": sample}
        print("lockstep:", steps, flush=True)
        runs = {"ours": {}, "authors": {}}
        for seed in args.seeds:
            runs["authors"][seed] = theirs(args, tmp, seed, args.epochs, sample["items"] + 1)
            runs["ours"][seed] = ours(tmp, seed, args.epochs, tmp / f"ours_{seed}")
            print(seed, runs["authors"][seed][-1], runs["ours"][seed][-1], flush=True)
    if not args.seeds:  # checks 1 and 2 renewed; check 3 as its last run left it
        kept = json.loads(OUT.read_text()) if OUT.is_file() else {}
        OUT.write_text(
            json.dumps(kept | {"same_weights": weights, "lockstep": steps}, indent=2) + "\n"
        )
        return
    summary = {}
    for epoch in range(args.epochs):
        row = {}
        for side in runs:
            for m in ("recall@20", "mrr@20"):
                vals = [r[epoch][m] for r in runs[side].values()]
                row[f"{side} {m}"] = {
                    "mean": float(np.mean(vals)),
                    "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                }
        for m in ("recall@20", "mrr@20"):
            a, b = row[f"ours {m}"]["mean"], row[f"authors {m}"]["mean"]
            row[f"relative difference {m}"] = (a - b) / b
        summary[f"epoch {epoch + 1}"] = row
    result = {
        "sample": sample,
        "settings": "published: batch 100, hidden 100, step 1, Adam 1e-3, "
        "lr_dc 0.1 every 3 epochs, l2 1e-5",
        "seeds": args.seeds,
        "same_weights": weights,
        "lockstep": steps,
        "per_epoch": summary,
        "runs": runs,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
