# Two commands set everything up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU wheel of torch; installed before the project so that its torch range adds nothing.
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test test-slow lint format bench headline report results clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m bench.run $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

format: $(STAMP)
	$(PY) -m ruff format src tests benchmarks
	$(PY) -m ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/throughput.py $(ARGS)

# The headline table (results/headline.{md,tex}, README's first table) from the committed
# studies in sweeps/*.db alone: no run directory is needed.
headline: $(STAMP)
	$(PY) -m bench.report.headline --readme README.md $(ARGS)

# Tables and figures from the records under results/raw and the studies in sweeps/*.db:
# the main comparison (README), every prepared dataset, and the MovieLens protocols.
report: $(STAMP)
	$(PY) -m bench.report --readme README.md --records results/raw/table --records results/raw/studies $(ARGS)
	$(PY) -m bench.report --no-studies --benchmark none --records results/raw/table --records results/raw/datasets \
		--out results/datasets --title "GRU4Rec and baselines on every prepared dataset" \
		--readme README.md --readme-block datasets
	$(PY) -m bench.report --no-studies --benchmark none --records results/raw/movielens --out results/movielens \
		--metrics hr@10,ndcg@10 --title "MovieLens, leave-one-out, full ranking, seen items filtered" \
		--readme README.md --readme-block movielens

# The runs behind results/ (real data in ../shared/data; a few hours on 2 CPU cores), then the report.
results: $(STAMP)
	$(PY) -m bench.run -m dataset=diginetica_srgnn,yoochoose1_64 \
		baseline=pop,spop,itemknn,bprmf,sknn,vsknn,stan,sr,ar \
		hydra.sweep.dir=results/raw/table/baselines
	$(PY) -m bench.run -m dataset=diginetica_srgnn,yoochoose1_64 loss=ce,bpr-max,top1-max,top1,bpr \
		n_epochs=5 eval.per_epoch=true save_model=false hydra.sweep.dir=results/raw/table/gru4rec
	$(PY) -m bench.run -m hparams_search=sr dataset=diginetica_srgnn hydra.sweeper.n_trials=20 \
		hydra.sweep.dir=results/raw/studies/sr_diginetica_srgnn
	$(PY) -m bench.run -m dataset=rsc15_100k,retailrocket_cgenet,tmall_srgnn loss=ce n_epochs=5 \
		save_model=false hydra.sweep.dir=results/raw/datasets/gru4rec
	$(PY) -m bench.run -m dataset=rsc15_100k,retailrocket_cgenet,tmall_srgnn \
		baseline=pop,spop,itemknn,sknn hydra.sweep.dir=results/raw/datasets/baselines
	for ds in ml-100k ml-latest-small; do \
		$(PY) -m bench.run model=gru4rec_seq dataset=$$ds seq.batch_size=16 seq.learning_rate=0.01 \
			seq.n_epochs=40 save_model=false \
			hydra.run.dir=results/raw/movielens/$$ds/bptt && \
		$(PY) -m bench.run dataset=$$ds loss=ce n_epochs=10 save_model=false \
			hydra.run.dir=results/raw/movielens/$$ds/session_parallel && \
		$(PY) -m bench.run -m dataset=$$ds baseline=pop,itemknn \
			hydra.sweep.dir=results/raw/movielens/$$ds/baselines || exit 1; \
	done
	$(MAKE) report

clean:
	rm -rf $(VENV) results/raw .pytest_cache .ruff_cache
