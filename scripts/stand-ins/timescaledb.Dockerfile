# Stand-in for timescale/timescaledb:latest-pg15, built by
# scripts/build-stand-ins.sh where the real image cannot be pulled: Debian 12's
# PostgreSQL 15, at exactly the version this machine has (PG_VERSION), and the
# TimescaleDB extension that scripts/ensure-timescaledb.sh built against it
# (copied into the context's extension/ by the script). A library built for a
# newer minor release than the server's fails to load ("undefined symbol"),
# hence the pinned version. The entrypoint follows the official image's
# contract as far as the stack relies on it (see timescaledb-entrypoint.sh).
# hadolint global ignore=DL3006,DL3008
ARG ROOTFS
FROM ${ROOTFS}

ARG INPUTS=unknown
ARG PG_VERSION
LABEL org.wearables-ingest.stand-in="timescale/timescaledb:latest-pg15" \
      org.wearables-ingest.stand-in.inputs="${INPUTS}"

# Like the official postgres image: no cluster of Debian's own (the entrypoint
# creates one in PGDATA), and a package version this script names.
RUN test -n "${PG_VERSION}" \
    && apt-get update \
    && apt-get -y upgrade \
    && apt-get install -y --no-install-recommends postgresql-common \
    && sed -ri 's/^#?[[:space:]]*(create_main_cluster)[[:space:]]*=.*$/\1 = false/' \
        /etc/postgresql-common/createcluster.conf \
    && apt-get install -y --no-install-recommends \
        "postgresql-15=${PG_VERSION}" "postgresql-client-15=${PG_VERSION}" \
    && rm -rf /var/lib/apt/lists/* \
    && test "$(dpkg-query -W -f='${Version}' postgresql-15)" = "${PG_VERSION}"

COPY extension/lib/ /usr/lib/postgresql/15/lib/
COPY extension/share/ /usr/share/postgresql/15/extension/
COPY timescaledb-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8

RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh \
    && mkdir -p /docker-entrypoint-initdb.d /var/run/postgresql "$PGDATA" \
    && chown postgres:postgres /var/run/postgresql "$PGDATA" \
    && chmod 3777 /var/run/postgresql \
    && chmod 0700 "$PGDATA"

VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
# As the official image: docker stop's signal is a fast shutdown (the
# entrypoint turns a SIGTERM into one too).
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
