# Two commands do all set-up on a fresh clone: `make book` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
STAMP := $(VENV)/.installed
# threads that sleep instead of spinning while waiting: avoids multi-fold slow-downs when the 2 cores are shared
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install data book test lint bench chapter clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Link the offline data and gene-set libraries from ../shared into data/ (git-ignored) when present.
data:
	mkdir -p data/genesets
	@for f in $(SHARED)/data/*.h5ad; do [ -e "$$f" ] && ln -sf "$$(realpath "$$f")" data/ || true; done
	@for f in $(SHARED)/genesets/*.gmt; do [ -e "$$f" ] && ln -sf "$$(realpath "$$f")" data/genesets/ || true; done
	@ls data data/genesets

book: install data
	$(BIN)/jupyter-book build . --all

test: install data
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: install data
	$(BIN)/python benchmarks/interpretation.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/book.py

# Re-execute one chapter in place, e.g. `make chapter NB=notebooks/02_cell_typing.py`.
chapter: install data
	$(BIN)/jupytext --to ipynb --execute $(NB)

clean:
	rm -rf _build
