# Batch Normalization from Scratch. `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Two stamps: the runtime dependencies (`pip install -e .`: all `make demo` needs) and the dev
# extras on top (`.[dev]`: pytest, ruff and torch, the tests' oracle; `make test` only). torch
# for Python 3.12/3.13 is a CUDA build of several GB, so the demo never installs it.
STAMP     := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
NOTEBOOKS := $(wildcard source/*/*.ipynb)
# nbgrader and jupyter find their helpers (alembic, kernels) on PATH: use the venv's.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help venv demo test test-fast lint release lab strip grade check screenshots bench bench-grading bench-notebooks clean

help:
	@echo "make demo     autograde the sample submissions with nbgrader in a scratch course (yours is not touched), print grades and where"
	@echo "make test     lint (ruff) and run the whole test suite (pytest)"
	@echo "make test-fast  the tests that run no nbgrader and no kernel (under a minute): the edit loop"
	@echo "              any Python from 3.11 on: make demo PYTHON=python3.13"
	@echo "make lab      start JupyterLab (with the nbgrader extension) on START_HERE.ipynb; your copies of the notebooks are in mywork/"
	@echo "make release  regenerate release/ from source/ with nbgrader generate_assignment (never over a file the course did not generate)"
	@echo "make strip    clear outputs from the source notebooks before committing"
	@echo "make grade ASSIGNMENT=02_batchnorm_forward [WORKERS=2]   autograde every submission in parallel, then write the report"
	@echo "make check NB=mywork/02_batchnorm_forward/batchnorm_forward.ipynb [HTML=feedback.html]   self-check one notebook (as its last cell does): hidden checks and diagnoses, as nbgrader would grade it"
	@echo "make screenshots   refresh the README's pictures (docs/*.png) from the browser tests"
	@echo "make bench    run the BatchNorm speed benchmark"
	@echo "make bench-grading [REPEATS=3]   seconds per submission: nbgrader autograde, the runner, Dask local:2 on SQLite and PostgreSQL"
	@echo "make bench-notebooks  each notebook's run time and peak memory on one core"
	@echo "make clean    remove the demo's scratch courses and the caches (never your gradebook, submissions, feedback or reports)"

# Any Python from 3.11 on (3.11, 3.12 and 3.13 are tested): `make demo PYTHON=python3.13`.
# PYTHON is the interpreter .venv is created with (`rm -rf .venv` to switch). The venv is
# updated only when pyproject.toml changes (idempotent); then a venv made by another Python
# version than $(PYTHON) is recreated.
PY_CHECK := import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else \
	"Python 3.11 or newer is required (3.11, 3.12 and 3.13 are supported), found %s at %s; " \
	"choose another with make demo PYTHON=python3.12" % (sys.version.split()[0], sys.executable))
PY_VERSION = import sys; print("%d.%d" % sys.version_info[:2])

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or newer, or choose one with make demo PYTHON=python3.12"; exit 2; }
	@$(PYTHON) -c '$(PY_CHECK)'
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c '$(PY_VERSION)')" != "$$($(PYTHON) -c '$(PY_VERSION)')" ]; then \
		echo "$(VENV) was made by another Python version: recreating it with $(PYTHON)"; rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(DEV_STAMP)

venv: $(DEV_STAMP)

demo: $(STAMP)
	$(BIN)/python -m autograder demo

lint: $(DEV_STAMP)
	$(BIN)/ruff check course autograder tests benchmarks source nbgrader_config.py

# Three pytest-xdist workers: most tests wait on kernels, nbgrader and servers (measured in a
# fresh clone on 2 cores: 10.5 min with three, 10.9 with two, 16 with one; the longest files
# bound it). `--dist loadfile` keeps each file's tests on one worker, in order, so a module's
# fixtures (a graded course, a JupyterLab server) are built once. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 3

test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# Tests marked `nbgrader` (nbgrader, a kernel or JupyterLab; see tests/conftest.py) are left out.
test-fast: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m "not nbgrader" -n $(TEST_WORKERS) --dist loadfile

release: $(STAMP)
	$(BIN)/python -m autograder release

# The learner's copies (mywork/, course/mywork.py) are made first, never over an existing file.
# LAB_ARGS: more options for jupyter lab (e.g. --no-browser).
lab: $(STAMP)
	$(BIN)/python -m course.mywork
	$(BIN)/jupyter lab START_HERE.ipynb $(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

strip: $(STAMP)
	$(BIN)/jupyter nbconvert --clear-output --inplace $(NOTEBOOKS)

grade: $(STAMP)
	@test -n "$(ASSIGNMENT)" || { echo "usage: make grade ASSIGNMENT=02_batchnorm_forward [WORKERS=2]"; exit 2; }
	$(BIN)/python -m autograder grade $(ASSIGNMENT) --workers $(or $(WORKERS),2)
	$(BIN)/python -m autograder report $(ASSIGNMENT)

# The self-check needs the hidden half (autograder/): a class release has none, so say so
# before anything else (no venv is built for nothing). It needs the runtime dependencies only.
# A score below full marks is the result, not an error: exit 0 whenever the check ran (the
# self-check's 0 or 1), its own status when it could not (2: the notebook cannot be graded).
FULL_REPO := self-check needs the full course repository (for example on Binder); in a class, your instructor grades
check:
	@test -d autograder/checks || { echo "$(FULL_REPO)" >&2; exit 2; }
	@test -n "$(NB)" || { echo "usage: make check NB=mywork/02_batchnorm_forward/batchnorm_forward.ipynb [HTML=feedback.html]" >&2; exit 2; }
	@$(MAKE) --no-print-directory $(STAMP) >/dev/null
	@status=0; $(BIN)/python -m autograder check "$(NB)" $(if $(HTML),--html "$(HTML)",) || status=$$?; \
	if [ $$status -gt 1 ]; then exit $$status; fi; \
	$(if $(HTML),echo "feedback page written to $(abspath $(HTML))",true)

# The README's pictures, taken by the browser tests (tests/test_browser.py, tests/test_binder.py; the
# similarity page and the item-analysis figure: tests/test_report_pages.py).
screenshots: $(DEV_STAMP)
	BN_SCREENSHOTS=$(abspath docs) $(BIN)/python -m pytest tests/test_browser.py tests/test_binder.py tests/test_report_pages.py -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_batchnorm.py

REPEATS ?= 1
bench-grading: $(STAMP)
	$(BIN)/python benchmarks/bench_grading.py --repeats $(REPEATS)

bench-notebooks: $(STAMP)
	$(BIN)/python benchmarks/bench_notebooks.py

# The demo grades in scratch courses (batchnorm-demo-* in the temporary folder, see
# autograder/tools/demo.py); the course's own gradebook and folders are the instructor's data.
clean:
	rm -rf "$$($(PYTHON) -c 'import tempfile; print(tempfile.gettempdir())')"/batchnorm-demo-*
	rm -rf .pytest_cache .ruff_cache
	find course autograder tests benchmarks -name __pycache__ -type d -prune -exec rm -rf {} +
