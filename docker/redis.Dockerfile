# Redis for the Compose stack, from Debian's redis-server package (no registry needed).
# Built by `make compose-images` (docker/image.sh redis); its settings (password, AOF,
# noeviction) are on the command line in docker-compose.yml.
ARG BASE=debian:bookworm-slim
FROM ${BASE}

RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
