# pyinit: `make demo` and `make test` work on a fresh machine with python3 and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test unit integration lint prctl-extra test-deps dist deb clean ansible-lint

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

# What the tests compare against or run in, installed when root with apt (skipped,
# with the reason, otherwise): Debian's tini, dumb-init and runit for the drop-in
# comparisons, and iptables so podman's default (bridge) network works.
TEST_PACKAGES := tini dumb-init runit iptables
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

# Wheel and sdist (pure Python) in dist/, then the Debian package beside them.
dist: $(VENV)/.test-installed
	$(PY) -m build --outdir dist .

deb:
	packaging/debian/build-deb.sh dist

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
