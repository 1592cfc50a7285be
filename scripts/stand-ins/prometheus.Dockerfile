# Stand-in for prom/prometheus (the monitoring profile's), built by
# scripts/build-stand-ins.sh where the real image cannot be pulled: Debian 12's
# prometheus package, laid out as the official image's users expect it: the
# server as ENTRYPOINT /bin/prometheus, data in /prometheus, run as nobody (65534),
# port 9090. Debian's version (2.42) is older than the pinned image's; the
# stack uses nothing newer (the rules pass Debian's promtool).
# hadolint global ignore=DL3006,DL3008
ARG ROOTFS
FROM ${ROOTFS}

ARG INPUTS=unknown
ARG IMAGE=prom/prometheus
LABEL org.wearables-ingest.stand-in="${IMAGE}" \
      org.wearables-ingest.stand-in.inputs="${INPUTS}"

RUN apt-get update \
    && apt-get -y upgrade \
    && apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus /etc/prometheus/rules \
    && chown nobody:nogroup /prometheus \
    && test -x /bin/prometheus

USER 65534:65534
WORKDIR /prometheus
VOLUME /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
