"""Every committed table and figure is regenerated from committed inputs alone: the report
from the records in results/records, the headline from the study storages in sweeps/.
Runs the same commands as `make report` / `make headline` on copies and compares."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.benchmark_scripts import benchmark_module

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "results"
ABSOLUTE = ("/work/", "/home/", "/root/", "/tmp/", "/Users/")

# (records folders under results/records, output folder, extra arguments): the Makefile's report.
REPORTS = [
    (["table"], "", []),
    (
        ["table", "datasets"],
        "datasets",
        ["--benchmark", "none", "--title", "GRU4Rec and baselines on every prepared dataset"],
    ),
    (
        ["movielens"],
        "movielens",
        [
            "--benchmark",
            "none",
            "--metrics",
            "hr@10,ndcg@10",
            "--title",
            "MovieLens, leave-one-out, full ranking, seen items filtered",
        ],
    ),
]


def generated(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix in (".md", ".tex", ".csv", ".png", ".pdf")
    }


@pytest.mark.parametrize(
    "records, out, extra", REPORTS, ids=["comparison", "datasets", "movielens"]
)
def test_make_report_regenerates_the_committed_tables_and_figures(
    tmp_path, records, out, extra, monkeypatch
):
    """Reads the committed records in place (runs.csv lists their paths) and writes elsewhere."""
    from bench.report.__main__ import main as report_main

    monkeypatch.chdir(tmp_path)  # nothing may depend on the working directory
    target = tmp_path / "out"
    args = ["--out", str(target), *extra]
    if out == "":
        args += ["--benchmark", str(ROOT / "benchmarks/results/throughput.json")]
    for r in records:
        args += ["--records", str(RESULTS / "records" / r)]
    assert report_main(args) == 0
    committed = RESULTS / out if out else RESULTS
    new = generated(target)
    assert "tables/runs.csv" in new
    for name, data in new.items():
        assert (committed / name).read_bytes() == data, (
            f"{out}/{name} differs from the committed file"
        )
    texts = [data.decode() for name, data in new.items() if name.endswith((".md", ".tex"))]
    assert not [t for t in texts if any(a in t for a in ABSOLUTE)]


def committed_storages(folder: Path) -> list[str]:
    """The study storages as git holds them (the index: what is committed or staged), so a
    study still writing its local storage does not change what the headline is checked
    against; every sweeps/*.db file outside a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "sweeps/*.db"],
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        listed = None
    storages = []
    if listed is None:
        for db in sorted((ROOT / "sweeps").glob("*.db")):
            shutil.copy(db, folder / db.name)
            storages.append(folder / db.name)
    else:
        for name in sorted(n.decode() for n in listed if n):
            blob = subprocess.run(
                ["git", "-C", str(ROOT), "show", f":{name}"], capture_output=True, check=True
            ).stdout
            (folder / Path(name).name).write_bytes(blob)
            storages.append(folder / Path(name).name)
    return [a for db in storages for a in ("--storage", f"sqlite:///{db}")]


def test_make_headline_regenerates_the_committed_headline(tmp_path):
    from bench.report.headline import main as headline_main

    storages = committed_storages(tmp_path)
    out = tmp_path / "out"
    assert headline_main([*storages, "--out", str(out)]) == 0
    for name in ("headline.md", "headline.tex"):
        assert (out / name).read_text() == (RESULTS / name).read_text(), name
    for fig in sorted((out / "figures").glob("*.png")):
        assert (RESULTS / "figures" / fig.name).read_bytes() == fig.read_bytes(), fig.name


def test_committed_results_hold_no_machine_path():
    texts = [
        p.read_text(errors="ignore")
        for p in RESULTS.rglob("*")
        if p.suffix in (".md", ".tex", ".csv", ".json")
        and "raw" not in p.relative_to(RESULTS).parts
    ]  # results/raw is local, git-ignored run output
    assert texts and not [t for t in texts if any(a in t for a in ABSOLUTE)]


@pytest.mark.parametrize("name", ["readme_times", "scale", "peer_epoch_cost"])
def test_the_readme_blocks_of_measured_costs_are_drawn_from_their_json(name):
    """README "Running" (what each real-data command costs), "Neural peers" (an epoch's
    cost) and "Scale" (a log of the seed paper's size): each block is what
    `benchmarks/<name>.py --table-only` draws from benchmarks/results/<name>.json."""
    module = benchmark_module(name)
    report = json.loads((ROOT / "benchmarks" / "results" / f"{name}.json").read_text())
    block = name.replace("_", "-")
    found = re.search(
        rf"<!-- {block}:start -->\n(.*)<!-- {block}:end -->", (ROOT / "README.md").read_text(), re.S
    )
    assert found and found.group(1) == module.table(report)
    if name == "readme_times":
        assert [r["command"] for r in report["runs"]] == module.COMMANDS


def test_the_committed_srgnn_lockstep_agrees_with_the_authors_code():
    """Issue #29's faithfulness bar, as committed: SR-GNN here and the authors' code, from
    the same weights on the same batches for whole epochs, each scored by its own
    evaluation, land within 2% relative on Recall@20 and MRR@20 after every epoch."""
    report = json.loads((ROOT / "benchmarks" / "results" / "srgnn_parity.json").read_text())
    assert_lockstep_within_2_percent(report["lockstep"], report["lockstep"]["sample"], 0.05)


def assert_lockstep_within_2_percent(lockstep: dict, sample: dict, floor: float) -> None:
    """Whole epochs of the sample's training pairs, each side's metrics above `floor` and
    within 2% relative of the other's after every epoch."""
    assert lockstep["epochs"] >= 2
    assert lockstep["steps"] == lockstep["epochs"] * -(-sample["train_pairs"] // lockstep["batch"])
    assert len(lockstep["per_epoch"]) == lockstep["epochs"]
    for epoch in lockstep["per_epoch"]:
        for metric in ("recall@20", "mrr@20"):
            theirs, ours = epoch["theirs"][metric], epoch["ours"][metric]
            assert theirs > floor and abs(ours - theirs) / theirs <= 0.02, (epoch, metric)


def test_the_committed_narm_lockstep_agrees_with_the_authors_code():
    """NARM here and the authors' Theano code (run by PyTensor), as committed: the same
    weights give the same probabilities and cost (their 1e-8 inside the log and their
    float32 softmax sums aside), and trained in lockstep for whole epochs each side's own
    evaluation lands within 2% relative on Recall@20 and MRR@20 after every epoch."""
    report = json.loads((ROOT / "benchmarks" / "results" / "narm_parity.json").read_text())
    same = report["same_weights"]
    assert same["max_abs_probability_difference"] <= 1e-3 * same["max_probability"]
    assert abs(same["loss_ours"] - same["cost_theirs"]) <= 1e-4 * same["cost_theirs"]
    assert_lockstep_within_2_percent(report["lockstep"], report["sample"], 0.003)
