# Stand-in for python:3.11-slim, built by scripts/build-stand-ins.sh where the
# real image cannot be pulled. Debian 12's own Python 3.11 and pip on top of a
# debootstrap root file system (ROOTFS, imported by the script), laid out as
# the official image's users expect: python and pip on /usr/local/bin, and pip
# free to install into the system's Python (no EXTERNALLY-MANAGED marker).
# Versions come from the Debian release, as in the real image's base.
# hadolint global ignore=DL3006,DL3008
ARG ROOTFS
FROM ${ROOTFS}

ARG INPUTS=unknown
LABEL org.wearables-ingest.stand-in="python:3.11-slim" \
      org.wearables-ingest.stand-in.inputs="${INPUTS}"

RUN apt-get update \
    && apt-get -y upgrade \
    && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3 /usr/local/bin/python \
    && ln -s /usr/bin/pip3 /usr/local/bin/pip \
    && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \
    && python -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'

ENV LANG=C.UTF-8
CMD ["python3"]
