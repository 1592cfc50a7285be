# Stand-in for prom/pushgateway (the monitoring profile's), built by
# scripts/build-stand-ins.sh where the real image cannot be pulled: Debian 12's
# prometheus-pushgateway package, run as the official image runs its binary:
# as nobody, listening on port 9091, metrics kept in memory.
# hadolint global ignore=DL3006,DL3008
ARG ROOTFS
FROM ${ROOTFS}

ARG INPUTS=unknown
ARG IMAGE=prom/pushgateway
LABEL org.wearables-ingest.stand-in="${IMAGE}" \
      org.wearables-ingest.stand-in.inputs="${INPUTS}"

RUN apt-get update \
    && apt-get -y upgrade \
    && apt-get install -y --no-install-recommends prometheus-pushgateway \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/prometheus-pushgateway /usr/local/bin/pushgateway

USER 65534:65534
EXPOSE 9091
ENTRYPOINT ["/usr/local/bin/pushgateway"]
