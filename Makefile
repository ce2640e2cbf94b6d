# Two commands do all set-up on a fresh clone: `make book` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
STAMP := $(VENV)/.installed
# threads that sleep instead of spinning while waiting: avoids multi-fold slow-downs when the 2 cores are shared
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install data book book-clean check-site browser check-browser test lint bench bench-celltypist mutation chapter preview clean

install: $(STAMP)

# The last step imports umap once: pynndescent (imported by umap) compiles ~40 numba functions into its on-disk
# cache on its first import (~30 s on 2 cores), which belongs to installing it, not to the first chapter that embeds.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import umap"
	touch $@

# Link the offline data and gene-set libraries from ../shared into data/ (git-ignored) when present.
data:
	mkdir -p data/genesets
	@for f in $(SHARED)/data/*.h5ad; do [ -e "$$f" ] && ln -sf "$$(realpath "$$f")" data/ || true; done
	@for f in $(SHARED)/genesets/*.gmt; do [ -e "$$f" ] && ln -sf "$$(realpath "$$f")" data/genesets/ || true; done
	@ls data data/genesets

# Sphinx warnings fail the build (-W), unresolved cross-references are warnings (-n); --keep-going lists them all.
# --all re-renders every page (so every warning is reported each time); execution is cached separately.
JB_BUILD := $(BIN)/jupyter-book build . --all -W -n --keep-going
CACHE := _build/.jupyter_cache
# where the chapters write their result tables; the site serves them at results/ (html_extra_path in _config.yml)
RESULTS := _build/extra/results

# Chapters re-execute only when their code changed (jupyter-cache); a change to bilinear_core, notebooks/bookkit/
# or requirements.txt empties the cache, since every chapter's outputs depend on them.
book: install data
	@key=$$(cat $$(find bilinear_core notebooks/bookkit -name '*.py' | sort) requirements.txt | sha256sum | cut -c1-64); \
	if [ -d $(CACHE) ] && [ "$$(cat $(CACHE)/inputs.sha256 2>/dev/null)" != "$$key" ]; then \
		echo "bilinear_core or requirements.txt changed: every chapter re-executes"; rm -rf $(CACHE); fi; \
	mkdir -p $(CACHE) && echo "$$key" > $(CACHE)/inputs.sha256
	mkdir -p $(RESULTS)
	$(JB_BUILD)

# Everything from scratch: no cached execution, no stale results (what CI runs).
book-clean: clean
	$(MAKE) book

# The built site as a reader meets it (see tools/check_site.py); run after `make book`.
check-site: install
	$(BIN)/python tools/check_site.py --html _build/html --toc _toc.yml

# Debian's headless Chromium and its chromedriver, for tools/check_browser.py and its tests (installed once, as root).
browser:
	@if [ -x /usr/bin/chromium ] && [ -e /usr/bin/chromedriver ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "make browser: install Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)," \
			"e.g. as root: apt-get install chromium chromium-driver" >&2; exit 1; fi; \
	apt-get update -qq && apt-get install -y -qq chromium chromium-driver || { \
		echo "make browser: apt-get failed; install Debian's chromium and chromium-driver" >&2; exit 1; }

# The built site's layout in headless Chromium (see tools/check_browser.py); run after `make book`.
check-browser: install browser
	$(BIN)/python tools/check_browser.py --html _build/html --toc _toc.yml

test: install data browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: install data
	$(BIN)/python benchmarks/interpretation.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/book.py

# bilinear_core.tl.predict beside CellTypist and logistic regression on reference -> query splits
# (benchmarks/annotation.py). CellTypist 1.7.1 needs scikit-learn < 1.8, so it gets an environment of its own.
CT_VENV := .venv-celltypist
CT_STAMP := $(CT_VENV)/.installed

$(CT_STAMP): benchmarks/requirements-celltypist.txt
	test -x $(CT_VENV)/bin/python || $(PYTHON) -m venv $(CT_VENV)
	$(CT_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements-celltypist.txt
	touch $@

bench-celltypist: install data $(CT_STAMP)
	$(BIN)/python benchmarks/annotation.py

# Mutation testing (mutmut, configured in pyproject.toml; not in CI): every mutant of the modules the chapters rest
# on, each against the tests that call the mutated function; then the score per module (tests/README.md).
# One torch thread per forked worker, two workers; results are cached in mutants/ (delete it for a fresh run).
mutation: install data
	$(BIN)/python -m pip install --quiet -r tests/requirements-mutation.txt
	OMP_NUM_THREADS=1 BILINEAR_DATA_DIR=$(CURDIR)/data $(BIN)/mutmut run --max-children 2
	$(BIN)/python tools/mutation_report.py --surviving tests/surviving_mutants.csv

# Re-execute one chapter in place, e.g. `make chapter NB=notebooks/02_cell_typing.py`.
chapter: install data
	$(BIN)/jupytext --to ipynb --execute $(NB)

# One page built alone, with its own execution cache, into _build/preview/NAME/_build/html: for working on a
# chapter while other pages change, e.g. `make preview PAGE=notebooks/02_cell_typing` (links to other pages dangle).
preview: install data
	@test -n "$(PAGE)" || { echo "usage: make preview PAGE=notebooks/02_cell_typing"; exit 2; }
	@out=_build/preview/$$(basename $(PAGE)); mkdir -p $$out $(RESULTS); \
	printf 'format: jb-book\nroot: %s\n' "$(PAGE)" > $$out/_toc.yml; \
	$(BIN)/jupyter-book build . --toc $$out/_toc.yml --path-output $$out --keep-going

clean:
	rm -rf _build
