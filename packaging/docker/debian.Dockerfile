# pyinit on Debian or Ubuntu: the distribution's python3 with Debian's own psutil
# and pyyaml packages (python3-psutil, python3-yaml: no compiler, no download from
# PyPI), pyinit itself in a venv that sees them (--system-site-packages), its
# commands linked into /usr/local/bin.
#
#   make dist     # dist/pyinit_pid1-VERSION-py3-none-any.whl
#   podman build -f packaging/docker/debian.Dockerfile -t localhost/pyinit-debian .
#
# Tested by tests/container with Debian 12 (bookworm). Ubuntu 22.04/24.04: same
# recipe, untested here (--build-arg BASE=ubuntu:24.04).
ARG BASE=debian:bookworm-slim
FROM ${BASE}

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv python3-psutil python3-yaml procps \
 && rm -rf /var/lib/apt/lists/*

COPY dist/ /tmp/pyinit-dist/
RUN python3 -m venv --system-site-packages /opt/pyinit \
 && /opt/pyinit/bin/pip install --no-cache-dir --disable-pip-version-check --no-index --no-deps \
      /tmp/pyinit-dist/pyinit_pid1-*.whl \
 && /opt/pyinit/bin/python -c 'import psutil, yaml, pyinit' \
 && /opt/pyinit/bin/python -I -m pyinit.launchers /usr/local/bin \
 && rm -rf /tmp/pyinit-dist \
 && mkdir -p /etc/service /etc/my_init.d /etc/container_environment

# Services only. For a main command: ENTRYPOINT ["pyinit", "--"] and CMD ["your", "command"].
ENTRYPOINT ["pyinit"]
STOPSIGNAL SIGTERM
