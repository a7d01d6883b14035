# Two commands set everything up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU wheel of torch; installed before the project so that its torch range adds nothing.
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test test-slow lint format bench headline studies peers report results records clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m bench.core.native
	$(PY) -m bench.core.product_choice
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m bench.run $(ARGS)

# One pytest worker per core (pytest-xdist), each test file on one worker: the README walk's
# steps build on each other; tests/conftest.py gives each worker one thread.
XDIST := -n auto --dist loadfile

test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

# The long end-to-end checks (accuracy parity with the official code, study retraining
# paths, pruning); CI runs them after `make test`.
test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(XDIST) $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m ruff format --check src tests benchmarks examples

format: $(STAMP)
	$(PY) -m ruff format src tests benchmarks examples
	$(PY) -m ruff check --fix src tests benchmarks examples

bench: $(STAMP)
	$(PY) benchmarks/throughput.py $(ARGS)

# The headline table (results/headline.{md,tex}, README's first table) from the committed
# studies in sweeps/*.db alone: no run directory is needed.
headline: $(STAMP)
	$(PY) -m bench.report.headline --readme README.md $(ARGS)

# Start or continue every headline study (sweeps/*.db), niced with one thread, then retrain
# each (about 25 CPU-hours in all; `python -m bench.studies --status` says where it stands).
studies: $(STAMP)
	nice -n 19 $(PY) -m bench.studies --threads 1 $(ARGS)

# The neural peers with their published settings on both SR-GNN splits, train -> test,
# evaluated after every epoch: the headline's "published settings, run here" rows. Records
# go to results/records/peers (committed). 30 epochs each: hours per run are the minutes
# per epoch of benchmarks/results/peer_epoch_cost.json (README, "Cost per epoch") / 2,
# e.g. SGNN-HN on Diginetica about 6 on one thread. PEERS and SPLITS pick a part, e.g.
#   make peers PEERS=sgnnhn SPLITS=yoochoose1_64
PEER_RUN = $(PY) -m bench.run eval=peer_papers save_model=false
PEERS ?= srgnn sgnnhn narm
SPLITS ?= yoochoose1_64 diginetica_srgnn
peers: $(STAMP)
	for m in $(PEERS); do for ds in $(SPLITS); do \
		$(PEER_RUN) model=$$m dataset=$$ds hydra.run.dir=results/raw/peers/$$m/$$ds && \
		mkdir -p results/records/peers/$$m/$$ds && \
		cp results/raw/peers/$$m/$$ds/result.json results/raw/peers/$$m/$$ds/ranks.npy \
			results/records/peers/$$m/$$ds/ || exit 1; \
	done; done

# Tables and figures from the committed records under results/records (one result.json and
# its per-event ranks per run; `make results` produces them): the main comparison (README),
# every prepared dataset, and the MovieLens protocols. Studies are the headline's (make headline).
REPORT := $(PY) -m bench.report
report: $(STAMP)
	$(REPORT) --readme README.md --records results/records/table $(ARGS)
	$(REPORT) --benchmark none --records results/records/table --records results/records/datasets \
		--out results/datasets --title "GRU4Rec and baselines on every prepared dataset" \
		--readme README.md --readme-block datasets
	$(REPORT) --benchmark none --records results/records/movielens --out results/movielens \
		--metrics hr@10,ndcg@10 --title "MovieLens, leave-one-out, full ranking, seen items filtered" \
		--readme README.md --readme-block movielens

# The runs behind results/ (real data in ../shared/data; about 1.5 hours on 2 CPU cores), their
# records copied to results/records (committed), then the report.
RUN := $(PY) -m bench.run
NOSAVE := save_model=false
results: $(STAMP)
	$(RUN) -m dataset=diginetica_srgnn,yoochoose1_64 baseline=pop,spop,itemknn,bprmf,sknn,vsknn,stan,sr,ar \
		$(NOSAVE) hydra.sweep.dir=results/raw/table/baselines
	$(RUN) -m dataset=diginetica_srgnn,yoochoose1_64 loss=ce,bpr-max params=official n_epochs=5 \
		eval.per_epoch=true $(NOSAVE) hydra.sweep.dir=results/raw/table/gru4rec_official
	$(RUN) -m dataset=diginetica_srgnn,yoochoose1_64 loss=top1-max,top1,bpr n_epochs=5 \
		eval.per_epoch=true $(NOSAVE) hydra.sweep.dir=results/raw/table/gru4rec
	$(RUN) dataset=rsc15_100k loss=ce params=official n_epochs=5 \
		$(NOSAVE) hydra.run.dir=results/raw/datasets/gru4rec_official/rsc15_100k
	$(RUN) -m dataset=retailrocket_cgenet,tmall_srgnn loss=ce n_epochs=5 \
		$(NOSAVE) hydra.sweep.dir=results/raw/datasets/gru4rec
	$(RUN) -m dataset=rsc15_100k,retailrocket_cgenet,tmall_srgnn baseline=pop,spop,itemknn,sknn \
		$(NOSAVE) hydra.sweep.dir=results/raw/datasets/baselines
	for ds in ml-100k ml-latest-small; do \
		$(RUN) model=gru4rec_seq dataset=$$ds batch_size=16 learning_rate=0.01 n_epochs=40 \
			$(NOSAVE) hydra.run.dir=results/raw/movielens/$$ds/bptt && \
		$(RUN) dataset=$$ds loss=ce n_epochs=10 \
			$(NOSAVE) hydra.run.dir=results/raw/movielens/$$ds/session_parallel && \
		$(RUN) -m dataset=$$ds baseline=pop,itemknn \
			$(NOSAVE) hydra.sweep.dir=results/raw/movielens/$$ds/baselines || exit 1; \
	done
	$(MAKE) records report

# Keep only what the tables need from each run directory: the record and its per-event ranks.
records:
	rm -rf results/records && mkdir -p results/records
	cd results/raw && find table datasets movielens \( -name result.json -o -name ranks.npy \) \
		-exec cp --parents {} ../records/ \;

clean:
	rm -rf $(VENV) results/raw .pytest_cache .ruff_cache
