# Two commands do all the set-up on a fresh machine (see README):
#   make demo   - audit the bundled examples (creates .venv on first use)
#   make test   - run the test suite          (creates .venv on first use)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# the CPU build of torch first, so that the project's "torch>=2.2" installs nothing more
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# the optional trainer integrations too: their tests run (and skip cleanly without them)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,integrations]"
	touch $(STAMP)

# The buggy examples exit 1 by design (that is the CI gate); the demo shows their reports.
demo: $(STAMP)
	$(BIN)/babysit audit examples/mlp_classifier.py
	$(BIN)/babysit audit examples/mlp_classifier.py --fail-on never -- --bug deep-tiny-init
	$(BIN)/babysit audit examples/cnn_classifier.py --fail-on never -- --bug raw-pixels
	$(BIN)/babysit audit examples/train_val_classifier.py --max-steps 0 --fail-on never -- --bug overfit

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/preflight.py
	$(BIN)/python benchmarks/lint.py

clean:
	rm -rf $(VENV) build dist *.egg-info
