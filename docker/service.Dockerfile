# The service image: trainq for the worker, Flower and the API. Built by
# `make service-image` from a staged context (build/service-context: wheelhouse/
# holding the trainq wheel and its dependencies).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

COPY wheelhouse/ /tmp/wheelhouse/
RUN python3 -m pip install --no-index --find-links /tmp/wheelhouse --break-system-packages \
        "trainq[gpu]" \
    && rm -rf /tmp/wheelhouse

RUN useradd --create-home --uid 1000 --user-group trainq
USER trainq
WORKDIR /home/trainq
CMD ["trainq", "worker"]
