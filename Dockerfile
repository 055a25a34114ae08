# The meshbed peer image: the base's python3 + peer.pyz, nothing else.
# `meshbed image build` builds it (with --offline, BASE=meshbed/base:offline made from the
# host's Python); the tag carries the pyz hash, so a changed agent gives a new image.
ARG BASE=python:3.12-slim
FROM ${BASE}
COPY peer.pyz /opt/meshbed/peer.pyz
ENTRYPOINT ["python3", "/opt/meshbed/peer.pyz"]
