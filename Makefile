# deltaface: the two commands a fresh machine needs (see README.md).
#   make demo   create .venv, install, run the demo on the embedded default input -> ./out
#   make test   create or update .venv, install, run the default test suite

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deltaface-installed
# Two cores: keep torch and OpenMP from oversubscribing them during tests.
export OMP_NUM_THREADS ?= 1

.PHONY: demo test test-slow bench install clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "deltaface needs $(PYTHON) (Python 3.11) on PATH" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever the package definition changes; torch is pinned in setup.py (CPU build).
$(STAMP): $(PY) setup.py pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/deltaface demo --out out

test: $(STAMP)
	$(PY) -m pytest -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

bench: $(STAMP)
	$(PY) bench/perf.py

clean:
	rm -rf $(VENV) out build *.egg-info
