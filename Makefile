# pyinit: `make demo` and `make test` work on a fresh machine with python3 and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test unit integration lint prctl-extra clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(PIP) install -e '.[test]'
	touch $@

# python-prctl is optional: it needs libcap headers and a compiler. The tests run
# the ctypes path always and the python-prctl path when this step could install it.
prctl-extra: $(VENV)/.test-installed
	@if [ "$$(id -u)" = 0 ] && [ ! -e /usr/include/sys/capability.h ] && command -v apt-get >/dev/null; then \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libcap-dev) >/dev/null 2>&1 || true; fi
	@$(PIP) install 'python-prctl>=1.7' >/dev/null 2>&1 \
	  && echo "python-prctl installed: both prctl paths are tested" \
	  || echo "python-prctl could not be built here: its tests will be skipped (ctypes path still tested)"

demo: $(VENV)/.installed
	$(PY) examples/demo.py

test: prctl-extra
	$(VENV)/bin/ruff check pyinit tests examples
	$(PY) -m pytest -q -p no:cacheprovider tests

unit: $(VENV)/.test-installed
	$(PY) -m pytest -q tests/unit

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check pyinit tests examples
	$(VENV)/bin/ruff format --check pyinit tests examples

clean:
	rm -rf $(VENV) build dist *.egg-info
