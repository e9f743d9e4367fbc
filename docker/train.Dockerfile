# The standard training image: Debian bookworm, Python 3.11, torch 2.13.0 (CPU) and
# numpy from the host's wheelhouse, train.py, and a non-root user. Built by `make image` from a
# staged context (build/train-context: train.py + wheelhouse/), never from the repo.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TRAINQ_CHECKPOINT_DIR=/checkpoints

COPY wheelhouse/ /tmp/wheelhouse/
RUN python3 -m pip install --no-index --find-links /tmp/wheelhouse --break-system-packages \
        -r /tmp/wheelhouse/requirements.txt \
    && rm -rf /tmp/wheelhouse \
    && python3 -c "import torch; torch.zeros(1).numpy(); print('torch', torch.__version__)"

RUN useradd --create-home --uid 1000 --user-group trainer \
    && mkdir -p /checkpoints /app \
    && chown trainer:trainer /checkpoints

COPY train.py /app/train.py
USER trainer
WORKDIR /app
CMD ["python3", "/app/train.py"]
