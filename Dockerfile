# One image, many roles (api, worker, beat, migrate, dashboard; flower and prometheus use theirs) chosen by the command.
# Build the GPU flavour with: docker build --build-arg EXTRAS=gme --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 .
FROM python:3.11-slim AS base

ARG EXTRAS=""
ARG TORCH_INDEX=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

RUN useradd --create-home --uid 10001 moderation
WORKDIR /app

COPY pyproject.toml README.md ./
COPY moderation ./moderation
COPY workers ./workers
COPY migrations ./migrations

# torch first (from the chosen index) so the extras never pull a different build.
RUN if [ -n "$EXTRAS" ]; then \
        pip install "torch>=2.4,<2.15" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} && \
        pip install ".[${EXTRAS}]"; \
    else \
        pip install .; \
    fi

# Mount points of the named volumes (pattern cache, beat schedule): a fresh volume copies this
# ownership, so the unprivileged user can write there.
RUN mkdir -p /var/cache/moderation/patterns /var/lib/moderation/beat /tmp/prometheus-api && \
    chown -R moderation /var/cache/moderation /var/lib/moderation /tmp/prometheus-api

USER moderation
ENTRYPOINT ["moderation"]
CMD ["--help"]
