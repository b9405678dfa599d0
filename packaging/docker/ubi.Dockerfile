# pyinit on Red Hat UBI 9 or Rocky Linux 9: the distribution's python3 (3.9),
# pyinit with psutil and pyyaml wheels (manylinux, no compiler) in a venv.
#
#   make dist
#   podman build -f packaging/docker/ubi.Dockerfile -t pyinit-ubi .
#   podman build -f packaging/docker/ubi.Dockerfile --build-arg BASE=rockylinux:9-minimal -t pyinit-rocky .
#
# Not run here (no UBI or Rocky image is reachable from the test machines):
# checked by tests/container/test_packaging.py for its instructions only.
ARG BASE=registry.access.redhat.com/ubi9/ubi-minimal
FROM ${BASE}

RUN microdnf install -y python3 python3-pip procps-ng shadow-utils && microdnf clean all

COPY dist/ /tmp/pyinit-dist/
RUN python3 -m venv /opt/pyinit \
 && /opt/pyinit/bin/pip install --no-cache-dir --disable-pip-version-check --only-binary=:all: /tmp/pyinit-dist/pyinit_pid1-*.whl \
 && /opt/pyinit/bin/python -I -m pyinit.launchers /usr/local/bin \
 && rm -rf /tmp/pyinit-dist \
 && mkdir -p /etc/service /etc/my_init.d /etc/container_environment

ENTRYPOINT ["pyinit"]
STOPSIGNAL SIGTERM
