"""The run's gauges, pushed to a Prometheus Pushgateway: how a batch job reports to Prometheus.

The loader runs and exits, so nothing could scrape it; it pushes at the end of
every run instead, and Prometheus scrapes the gateway. A push that fails never
fails the run: it is one WARNING line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from urllib.error import HTTPError, URLError

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import pushadd_to_gateway

from wearables_ingest.masking import mask
from wearables_ingest.report import Gauge

JOB = "wearables_ingest"  # the grouping key: one group, replaced by each run's push
TIMEOUT = 10.0  # seconds: a gateway that hangs must not hold cron's job for long
log = logging.getLogger("wearables_ingest")


class _Gauges:
    """A collector of fixed gauges, for prometheus-client's registry."""

    def __init__(self, gauges: Sequence[Gauge]) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for g in self._gauges:
            if not g.samples:
                continue  # no family at all: the gateway keeps the one pushed before
            names = [k for k, _ in g.samples[0][0]]
            family = GaugeMetricFamily(g.full_name, g.help, labels=names)
            for labels, value in g.samples:
                family.add_metric([v for _, v in labels], value)
            yield family


def registry(gauges: Sequence[Gauge]) -> CollectorRegistry:
    """The gauges in a registry of their own (not the process's global one)."""
    reg = CollectorRegistry(auto_describe=True)
    reg.register(_Gauges(gauges))
    return reg


def push(url: str, gauges: Sequence[Gauge], timeout: float = TIMEOUT) -> bool:
    """Push the gauges to the gateway at ``url``; on any failure, one WARNING line and False.

    POST (pushadd): each pushed gauge replaces its namesake in the group, and a gauge
    not pushed this time (a newest-row age the database could not give) keeps its
    last value rather than vanishing.
    """
    try:
        pushadd_to_gateway(url, job=JOB, registry=registry(gauges), timeout=timeout)
    except HTTPError as e:
        reason = f"HTTP {e.code} {e.reason}"
    except URLError as e:
        reason = str(e.reason)
    except Exception as e:  # noqa: BLE001 (whatever it is, the load must not fail for it)
        reason = str(e) or type(e).__name__
    else:
        log.debug("pushed the run's metrics to %s", mask(url))
        return True
    log.warning("could not push the run's metrics to the Pushgateway %s: %s (the load is "
                "not affected)", mask(url), " ".join(reason.split()))
    return False
