"""Every committed table and figure is regenerated from committed inputs alone: the report
from the records in results/records, the headline from the study storages in sweeps/.
Runs the same commands as `make report` / `make headline` on copies and compares."""

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "results"
ABSOLUTE = ("/work/", "/home/", "/root/", "/tmp/", "/Users/")

# (records folders under results/records, output folder, extra arguments): the Makefile's report.
REPORTS = [
    (["table"], "", []),
    (["table", "datasets"], "datasets",
     ["--benchmark", "none", "--title", "GRU4Rec and baselines on every prepared dataset"]),
    (["movielens"], "movielens",
     ["--benchmark", "none", "--metrics", "hr@10,ndcg@10",
      "--title", "MovieLens, leave-one-out, full ranking, seen items filtered"]),
]  # fmt: skip


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
    from bench.report.__main__ import main as report_main

    copy = tmp_path / "records"
    shutil.copytree(RESULTS / "records", copy)
    monkeypatch.chdir(tmp_path)  # nothing may depend on the working directory
    target = tmp_path / "out"
    args = ["--out", str(target), *extra]
    if out == "":
        args += ["--benchmark", str(ROOT / "benchmarks/results/throughput.json")]
    for r in records:
        args += ["--records", str(copy / r)]
    assert report_main(args) == 0
    committed = RESULTS / out if out else RESULTS
    new = generated(target)
    for name, data in new.items():
        if name == "tables/runs.csv":
            continue  # lists each record's path, which is the copy's here
        assert (committed / name).read_bytes() == data, (
            f"{out}/{name} differs from the committed file"
        )
    texts = [data.decode() for name, data in new.items() if name.endswith((".md", ".tex"))]
    assert not [t for t in texts if any(a in t for a in ABSOLUTE)]


def test_make_headline_regenerates_the_committed_headline(tmp_path):
    from bench.report.headline import main as headline_main

    storages = []
    for db in sorted((ROOT / "sweeps").glob("*.db")):
        shutil.copy(db, tmp_path / db.name)
        storages += ["--storage", f"sqlite:///{tmp_path / db.name}"]
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
