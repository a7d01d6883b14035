"""NARM here beside the authors' Theano code (lijingsdu/sessionRec_NARM), on the same data.

Theano no longer installs on current Pythons; its maintained successor PyTensor runs the
authors' NARM.py unchanged through a stand-in `theano` package written here at run time
(theano -> pytensor, T.nnet.hard_sigmoid as Theano defined it, clip(0.2 x + 0.5, 0, 1),
T.nnet.softmax row-wise, MRG_RandomStreams over PyTensor's RandomStream), float32.
Two checks, written to benchmarks/results/narm_parity.json:
Our model is laid out as theirs in both: its item 0 is their padding item (a zero row at
the start, a softmax class no input or target is), the real items 1..n.
1. Same weights: their build_model given our model's parameters (dropout as at test time)
   scores a batch of Diginetica test prefixes; its probabilities, cost and gradients
   are compared with ours.
2. Lockstep: both start from the same weights and train `--lockstep-epochs` whole epochs
   on the same batches of 512 of the sample's training prefixes (one shared shuffle per
   epoch), each through its own code (their scan, cost and Adam; ours), dropout off on
   both sides (its random masks cannot be shared); the losses step by step, the
   parameters at the end, and after every epoch each side's Recall@20 and MRR@20 under
   its own evaluation (their pred_evaluation; ours the shared evaluator over the real
   items, standard ties as their `>` counts them).
What is known to differ: their cost adds 1e-8 inside the log, their Adam decays beta1 by
(1 - 1e-8) per step, and the two sum in other orders (their scan and C code; torch).

The authors' code is read from a checkout given by --authors and run by --authors-python
(with pytensor and numpy<2); nothing of it is copied here.

  python benchmarks/narm_parity.py --authors ~/src/sessionRec_NARM \
      --authors-python ~/venvs/pytensor/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from srgnn_parity import make_sample, padded

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "narm_parity.json"
BATCH = 512

# The stand-in `theano` package: module path -> source.
SHIM = {
    "theano/__init__.py": "import pytensor as _p\n\nglobals().update("
    "{k: v for k, v in vars(_p).items() if not k.startswith('__')})\n"
    "from . import sandbox, tensor\n",
    "theano/tensor/__init__.py": "import pytensor.tensor as _t\n\nglobals().update("
    "{k: v for k, v in vars(_t).items() if not k.startswith('__')})\nfrom . import nnet\n",
    "theano/tensor/nnet.py": "import pytensor.tensor as pt\nfrom pytensor.tensor.special import "
    "softmax as _softmax\n\n\ndef hard_sigmoid(x):\n    return pt.clip(x * 0.2 + 0.5, 0, 1)\n"
    "\n\ndef softmax(x):\n    return _softmax(x, axis=-1)\n",
    "theano/sandbox/__init__.py": "from . import rng_mrg\n",
    "theano/sandbox/rng_mrg.py": "from pytensor.tensor.random.utils import RandomStream\n\n\n"
    "class MRG_RandomStreams:\n    def __init__(self, seed):\n        self.rs = RandomStream(seed)"
    "\n\n    def binomial(self, size, p, n, dtype):\n        return self.rs.binomial(n, p, "
    "size=size).astype(dtype)\n",
}

AUTHORS = """
import json, pickle, sys
import numpy as np
sys.path[:0] = [sys.argv[1], sys.argv[2]]  # the stand-in theano, their checkout
import theano, theano.tensor as T
import NARM, data_process
job = pickle.load(open(sys.argv[3], "rb"))
out = {}

def model(use_dropout):
    opts = dict(dim_proj=job["d"], hidden_units=job["h"], n_items=job["n_items"] + 1,
                encoder="gru", use_dropout=use_dropout)
    params = NARM.init_params(opts)
    for k, v in job["weights"].items():
        params[k] = v
    tparams = NARM.init_tparams(params)
    return (tparams,) + NARM.build_model(tparams, opts)

def cut(seqs):  # their load_data keeps each sequence's first 19 items
    return [s[:19] for s in seqs]

def check1(job, out):
    tparams, use_noise, x, mask, y, f_pred_prob, cost = model(True)
    use_noise.set_value(0.0)
    seqs, labels = job["check1"]
    xb, mb, yb = data_process.prepare_data(cut(seqs), labels)
    grads = T.grad(cost, list(tparams.values()))
    res = theano.function([x, mask, y], [cost] + grads)(xb, mb, yb)
    out["check1"] = {"probs": f_pred_prob(xb, mb), "cost": float(res[0]),
                     "grads": dict(zip(tparams.keys(), res[1:]))}

def lockstep(job, out):
    tparams, use_noise, x, mask, y, f_pred_prob, cost = model(False)
    train_function = theano.function(
        [x, mask, y], cost, updates=NARM.adam(cost, list(tparams.values()), 0.001))
    seqs, labels = job["train"]
    test = (cut(job["test"][0]), job["test"][1])
    kf_test = list(NARM.get_minibatches_idx(len(test[0]), 512))
    losses, per_epoch = [], []
    for epoch, order in enumerate(job["orders"]):
        for idx in np.array_split(order, -(-len(order) // 512)):
            xb, mb, yb = data_process.prepare_data(
                cut([seqs[i] for i in idx]), [labels[i] for i in idx])
            losses.append(float(train_function(xb, mb, yb)))
        recall, mrr = NARM.pred_evaluation(f_pred_prob, data_process.prepare_data, test, kf_test)
        per_epoch.append({"recall@20": float(recall), "mrr@20": float(mrr)})
        print("theirs", epoch + 1, per_epoch[-1], flush=True)
    out["lockstep"] = {"losses": losses, "per_epoch": per_epoch,
                       "params": {k: v.get_value() for k, v in tparams.items()}}

if "check1" in job:  # 1. same weights, dropout as at test time
    check1(job, out)
if "orders" in job:  # 2. lockstep, dropout off
    lockstep(job, out)
pickle.dump(out, open(sys.argv[4], "wb"))
"""


NAMES = {  # ours -> theirs
    "embedding.weight": "Wemb",
    "w_input": "gru_Wxrz",
    "b_input": "gru_b",
    "u_gates": "gru_Urz",
    "u_state": "gru_Uh",
    "a_states": "W_encoder",
    "a_last": "W_decoder",
    "v": "bl_vector",
    "bilinear": "bili",
}


def as_theirs(model):
    """Our model with item 0 as their padding item: a zero row, as their table starts."""
    with torch.no_grad():
        model.embedding.weight[0] = 0.0
    return model


def their_weights(model) -> dict[str, np.ndarray]:
    return {NAMES[k]: v.detach().numpy().copy() for k, v in model.named_parameters()}


def their_grads(model) -> dict[str, np.ndarray]:
    return {NAMES[k]: v.grad.numpy() for k, v in model.named_parameters()}


class RealItems(torch.nn.Module):
    """Our model laid out as theirs, as the shared evaluator sees a model: the real items
    only, indices 0..n-1 (1..n in the model)."""

    max_prefix = None

    def __init__(self, model):
        super().__init__()
        self.model, self.n_items = model, model.n_items - 1

    def score(self, prefixes, lengths):
        from bench.api import PAD

        shifted = torch.where(prefixes == PAD, PAD, prefixes + 1)
        return self.model.score(shifted, lengths)[:, 1:]


def run_authors(args, tmp: Path, job: dict) -> dict:
    for rel, text in SHIM.items():
        (tmp / "shim" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "shim" / rel).write_text(text)
    with open(tmp / "job.pkl", "wb") as f:
        pickle.dump(job, f)
    env = os.environ | {"PYTENSOR_FLAGS": "floatX=float32", "OMP_NUM_THREADS": "1"}
    cmd = [args.authors_python, "-c", AUTHORS, str(tmp / "shim"), args.authors]
    subprocess.run([*cmd, str(tmp / "job.pkl"), str(tmp / "theirs.pkl")], check=True, env=env)
    with open(tmp / "theirs.pkl", "rb") as f:
        return pickle.load(f)


def main() -> None:
    from bench.datasets import load_dataset
    from bench.peers.narm import NARM

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors", required=True, help="checkout of lijingsdu/sessionRec_NARM")
    ap.add_argument("--authors-python", required=True, help="a Python with pytensor, numpy<2")
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--train-sessions", type=int, default=40000)
    ap.add_argument("--test-sessions", type=int, default=3000)
    ap.add_argument("--lockstep-epochs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        sample = make_sample(Path(args.shared), args.train_sessions, args.test_sessions, tmp)
        files = {k: str(tmp / f"{k}_sessions.txt.gz") for k in ("train", "test")}
        data = load_dataset(
            {"name": "sample", "kind": "files", "format": "auto"} | files, "", "final"
        )
        n_items = len(data.item_map)
        # their pairs, their ids (our indices + 1): the ids of our model laid out as theirs
        with open(tmp / "train.txt", "rb") as f:
            train = pickle.load(f)
        with open(tmp / "test.txt", "rb") as f:
            test = pickle.load(f)
        check1 = (test[0][:200], test[1][:200])  # the first test prefixes
        torch.manual_seed(0)
        first = as_theirs(NARM(n_items + 1)).eval()
        torch.manual_seed(1)
        ours = as_theirs(NARM(n_items + 1, dropout_embed=0.0, dropout_context=0.0))
        rng = np.random.default_rng(0)
        orders = [rng.permutation(len(train[0])) for _ in range(args.lockstep_epochs)]
        base = {"d": 50, "h": 100, "n_items": n_items}
        ref = run_authors(args, tmp, base | {"weights": their_weights(first), "check1": check1})
        job = {"weights": their_weights(ours), "train": train, "test": test, "orders": orders}
        theirs = run_authors(args, tmp, base | job)["lockstep"]
        result = {
            "sample": sample,
            "same_weights": same_weights(first, *check1, ref["check1"]),
            "lockstep": lockstep(ours, train, orders, data, theirs),
        }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def same_weights(model, seqs, labels, ref) -> dict:
    x, lengths = padded(seqs)
    probs = torch.softmax(model.score(x, lengths).double(), 1).detach().numpy()
    loss = model.loss(x, lengths, torch.tensor(labels))
    loss.backward()
    mine = their_grads(model)
    return {
        "prefixes": len(seqs),
        "max_abs_probability_difference": float(np.abs(probs - ref["probs"]).max()),
        "max_probability": float(ref["probs"].max()),
        "loss_ours": loss.item(),
        "cost_theirs": ref["cost"],
        "max_abs_gradient_difference": {
            k: float(np.abs(g - ref["grads"][k]).max()) for k, g in mine.items()
        },
        "max_abs_gradient_theirs": {k: float(np.abs(ref["grads"][k]).max()) for k in mine},
    }


def lockstep(model, train, orders, data, theirs) -> dict:
    from bench.core.evaluate import evaluate
    from bench.core.prefixes import PrefixScorer

    seqs, labels = train
    opt = model.configure_optimizers()
    losses, per_epoch = [], []
    for epoch, order in enumerate(orders):
        model.train()
        for idx in np.array_split(order, -(-len(order) // BATCH)):
            x, lengths = padded([seqs[j] for j in idx])
            loss = model.loss(x, lengths, torch.tensor([labels[j] for j in idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        scorer = PrefixScorer(RealItems(model), int(data.test.lengths.max()))
        m = evaluate(scorer, data.test, [20], "standard", 512).metrics
        per_epoch.append(
            {
                "epoch": epoch + 1,
                "ours": {k: m[k] for k in ("recall@20", "mrr@20")},
                "theirs": theirs["per_epoch"][epoch],
            }
        )
        print("lockstep", per_epoch[-1], flush=True)
    gaps = np.abs(np.array(losses) - np.array(theirs["losses"]))
    last = per_epoch[-1]
    return {
        "epochs": len(orders),
        "steps": len(losses),
        "batch": BATCH,
        "max_abs_loss_difference": float(gaps.max()),
        "max_relative_loss_difference": float((gaps / np.array(theirs["losses"])).max()),
        "max_abs_parameter_difference_at_end": {
            k: float(np.abs(v - theirs["params"][k]).max()) for k, v in their_weights(model).items()
        },
        "per_epoch": per_epoch,
        "relative_difference_at_end": {
            m: (last["ours"][m] - last["theirs"][m]) / last["theirs"][m]
            for m in ("recall@20", "mrr@20")
        },
    }


if __name__ == "__main__":
    main()
