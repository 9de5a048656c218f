# Two commands do all set-up on a fresh machine:
#   make demo   venv, install, train on the embedded demo corpus, translate its test set, BLEU
#   make test   venv, install, the full test suite (slow end-to-end tests included)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(shell date +%Y-%m-%d_%H-%M-%S)
DEMO_RUN ?= outputs/demo/$(DEMO_STAMP)
DEMO_ARGS ?=

.PHONY: setup demo test test-fast lint wheel-check clean

setup: $(VENV)/.installed

# torch is pinned to the build this machine keeps on disk before anything can pull a CUDA
# build; pyproject.toml itself asks only torch>=2.2.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,data,serve]'  # data: the demo generator's tests; serve: nmt-serve
	touch $@

demo: setup
	$(BIN)/nmt-train data=demo model=demo attention.size=256 optim.lr=0.003 \
		train.max_minutes=2.5 train.max_epochs=0 train.valid_every=400 train.patience=0 \
		data.max_valid=300 threads=2 hydra.run.dir=$(DEMO_RUN) $(DEMO_ARGS)
	zcat data/demo/test.tsv.gz | tail -n +2 | cut -f1 > $(DEMO_RUN)/test.en
	zcat data/demo/test.tsv.gz | tail -n +2 | cut -f2 > $(DEMO_RUN)/test.de
	$(BIN)/nmt-translate run=$(DEMO_RUN) input=$(DEMO_RUN)/test.en output=$(DEMO_RUN)/test.hyp.de
	$(BIN)/nmt-evaluate hyp=$(DEMO_RUN)/test.hyp.de ref=$(DEMO_RUN)/test.de json=$(DEMO_RUN)/test.scores.json
	@echo "demo run: $(DEMO_RUN)"

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check nmt tests data bench
	$(BIN)/ruff format --check nmt tests data bench

clean:
	rm -rf $(VENV) build dist *.egg-info
