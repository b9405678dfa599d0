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

# Output throughput: pyinit's prefix and file modes against svlogd and s6-log (about 2 min).
# runit and s6 are installed with apt when missing (best effort; their rows are skipped otherwise).
.PHONY: bench
bench: $(VENV)/.installed
	@if ! command -v svlogd >/dev/null || ! command -v s6-log >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q runit s6) >/dev/null 2>&1 \
	      || echo "bench: could not install runit/s6: their rows will be skipped"; \
	  else echo "bench: svlogd/s6-log missing: their rows will be skipped"; fi; fi
	$(PY) bench/output_throughput.py
