# The role's walkthrough (roles/pyinit/README.md): pyinit and two services in an
# image, built with Ansible inside the build. From the repository's root:
#
#   make dist
#   podman build -f packaging/ansible/example.Dockerfile -t pyinit-ansible-example .
#   podman run --rm pyinit-ansible-example
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
 && python3 -m venv /opt/ansible && /opt/ansible/bin/pip install --no-cache-dir ansible-core
COPY dist/ /build/dist/
COPY packaging/ansible/ /build/
RUN /opt/ansible/bin/ansible-playbook -i localhost, -c local /build/site.yml
ENTRYPOINT ["pyinit"]
