# pyinit on Alpine: apk's python3 with Alpine's own psutil and pyyaml packages
# (py3-psutil, py3-yaml: no compiler, no musl wheels needed), pyinit itself in a
# venv that sees them (--system-site-packages).
#
#   make dist
#   podman build -f packaging/docker/alpine.Dockerfile -t pyinit-alpine .
#
# Not run here (no Alpine image is reachable from the test machines): checked by
# tests/container/test_packaging.py for its instructions only. Written for
# Alpine 3.20 (python3 3.12).
ARG BASE=alpine:3.20
FROM ${BASE}

RUN apk add --no-cache python3 py3-psutil py3-yaml procps

COPY dist/ /tmp/pyinit-dist/
RUN python3 -m venv --system-site-packages /opt/pyinit \
 && /opt/pyinit/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /tmp/pyinit-dist/pyinit_pid1-*.whl \
 && /opt/pyinit/bin/python -I -m pyinit.launchers /usr/local/bin \
 && rm -rf /tmp/pyinit-dist \
 && mkdir -p /etc/service /etc/my_init.d /etc/container_environment

ENTRYPOINT ["pyinit"]
STOPSIGNAL SIGTERM
