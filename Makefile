# pyinit: `make demo` and `make test` work on a fresh machine with python3 and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test unit integration lint prctl-extra test-deps dist deb clean ansible-lint schemas

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(PIP) install -e '.[test]'
	$(PIP) install 'prometheus_client>=0.16'  # /metrics tests parse with it; never in PID 1
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

# What the tests compare against or run in, installed when root with apt (skipped,
# with the reason, otherwise): Debian's tini, dumb-init and runit for the drop-in
# comparisons, iptables so podman's default (bridge) network works, and catatonit,
# which podman kube play builds its pause image from.
TEST_PACKAGES := tini dumb-init runit iptables catatonit
test-deps:
	@missing=""; for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing$$missing for the tests"; \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing) >/dev/null 2>&1 \
	    || echo "could not install$$missing: the tests that need them will be skipped"; fi

# ansible-lint on the Ansible role and its playbooks, installed from PyPI into the
# venv when it can be (best effort); skipped, with the reason, otherwise.
ansible-lint: $(VENV)/.test-installed
	@[ -x $(VENV)/bin/ansible-lint ] || $(PIP) install 'ansible-lint>=24' >/dev/null 2>&1 || true
	@if [ -x $(VENV)/bin/ansible-lint ]; then \
	  PATH="$(abspath $(VENV))/bin:$$PATH" ANSIBLE_ROLES_PATH=packaging/ansible/roles \
	    $(VENV)/bin/ansible-lint --offline --nocolor -q packaging/ansible tests/container/images/ansible; \
	else echo "ansible-lint could not be installed: the Ansible role is not linted"; fi

test: prctl-extra test-deps ansible-lint
	$(VENV)/bin/ruff check pyinit tests examples
	$(PY) -m pytest -q -p no:cacheprovider tests

unit: $(VENV)/.test-installed
	$(PY) -m pytest -q tests/unit

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check pyinit tests examples
	$(VENV)/bin/ruff format --check pyinit tests examples

# Wheel and sdist (pure Python) in dist/, then the Debian package beside them. twine
# checks the metadata as PyPI would (installed here only, not for make test); the
# LICENSE must be in both archives.
dist: $(VENV)/.test-installed
	rm -rf dist/pyinit_pid1-*
	$(PY) -m build --outdir dist .
	@[ -x $(VENV)/bin/twine ] || $(PIP) install 'twine>=6'
	$(VENV)/bin/twine check --strict dist/pyinit_pid1-*
	@unzip -l dist/pyinit_pid1-*.whl | grep -q 'dist-info/licenses/LICENSE' \
	  || { echo "dist: the wheel has no LICENSE"; exit 1; }
	@tar tzf dist/pyinit_pid1-*.tar.gz | grep -q '^pyinit_pid1-[^/]*/LICENSE$$' \
	  || { echo "dist: the sdist has no LICENSE"; exit 1; }

# The JSON Schemas of service.yaml and pyinit.yaml, from core/schema.py's tables
# (tests/unit/test_schema_json.py fails when they are out of date).
schemas: $(VENV)/.installed
	$(PY) -m pyinit.core.schema_json

deb:
	packaging/debian/build-deb.sh dist

clean:
	rm -rf $(VENV) $(BENCH_VENV) build dist *.egg-info

# Benchmarks against every peer (BENCHMARKS.md, bench/results/; about 20 min; needs root
# for the pid namespaces). Missing peers are installed with apt when root, else asked for.
# BENCH_FLAGS="boot memory --baseline main" runs the old code beside the new in one run.
PEERS := tini dumb-init catatonit runit s6 supervisor
PEER_BINS := tini dumb-init catatonit runsvdir s6-svscan supervisord
BENCH_FLAGS ?=
.PHONY: bench bench-peers stress
bench-peers:
	@missing=""; for b in $(PEER_BINS); do command -v $$b >/dev/null || missing=yes; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(PEERS)) >/dev/null 2>&1 \
	      || echo "bench: could not install every peer: the missing ones' rows are skipped"; \
	  elif [ -t 0 ] && command -v sudo >/dev/null; then \
	    printf "bench: install the peers with 'sudo apt-get install $(PEERS)'? [y/N] "; read a; \
	    [ "$$a" = y ] && sudo apt-get install -y $(PEERS) \
	      || echo "bench: the missing peers' rows are skipped"; \
	  else echo "bench: some peers are missing ($(PEERS)): their rows are skipped"; fi; fi

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PIP) install -e '.[bench]' || echo "bench: matplotlib missing: BENCHMARKS.md without plots"
	touch $@

# pyinit itself runs under the interpreter images ship: a venv of Debian's /usr/bin/python3
# (psutil and yaml from python3-psutil, python3-yaml), with the working copy on its path
# and pyinit's launchers (`#!python -I`, as the .deb installs them) in its bin/.
BENCH_VENV := .bench-venv
BENCH_PYTHON ?= /usr/bin/python3
$(BENCH_VENV)/bin/pyinit: pyinit/launchers.py
	@$(BENCH_PYTHON) -c 'import psutil, yaml' 2>/dev/null || { [ "$$(id -u)" = 0 ] && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-psutil python3-yaml python3-venv >/dev/null; }
	$(BENCH_PYTHON) -m venv --system-site-packages --without-pip $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))' \
	  | { read d; echo "$(CURDIR)" > "$$d/pyinit-working-copy.pth"; }
	$(BENCH_VENV)/bin/python -I -m pyinit.launchers --python $(CURDIR)/$(BENCH_VENV)/bin/python $(BENCH_VENV)/bin

bench: $(VENV)/.bench-installed bench-peers $(BENCH_VENV)/bin/pyinit
	$(PY) -m bench $(BENCH_FLAGS)

# The whole reliability suite (a smoke subset of it runs in `make test`): several minutes.
stress: $(VENV)/.test-installed
	PYINIT_STRESS=full $(PY) -m pytest -q -p no:cacheprovider -s --timeout 900 tests/stress
