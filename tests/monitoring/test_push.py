"""The push at the end of a run, to a real Pushgateway, and a real Prometheus scraping it.

Debian's prometheus-pushgateway and prometheus run on free loopback ports
(prometheus_parts.py); the loader runs as a user runs it, against the test's database.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from prometheus_parts import free_port, prometheus, pushgateway, wait_until

from helpers import DATA, logged, query, synth

METRICS = ["activity", "azm", "br", "hr", "hrv", "spo2"]


def stored(database_url: str) -> int:
    return query(database_url, "SELECT count(*) FROM raw_data")[0][0]


def test_a_run_pushes_its_counts_and_each_metrics_newest_row_age(tmp_path, run_ingest,
                                                                   database_url):
    synth(tmp_path / DATA, "--days", "1")
    with pushgateway(tmp_path) as gateway:
        before = time.time()
        first = run_ingest(PUSHGATEWAY_URL=gateway.url)
        assert first.returncode == 0, first.stderr
        assert "WARNING" not in first.stderr, first.stderr
        pushed = gateway.samples()
        rows = stored(database_url)
        assert rows > 0
        assert pushed["wearables_ingest_last_run_success"] == 1
        assert pushed['wearables_ingest_last_run_status{status="ok"}'] == 1
        assert pushed['wearables_ingest_last_run_status{status="failed"}'] == 0
        assert pushed["wearables_ingest_last_run_inserted_rows"] == rows
        assert pushed["wearables_ingest_last_run_already_present_rows"] == 0
        assert pushed["wearables_ingest_last_run_rejected_rows"] == 0
        assert pushed["wearables_ingest_last_run_failed_files"] == 0
        assert pushed["wearables_ingest_last_run_duration_seconds"] > 0
        assert pushed["wearables_ingest_last_success_timestamp_seconds"] >= before
        # The thresholds of the alerts, from the settings' defaults (26 h, 48 h).
        assert pushed["wearables_ingest_success_max_age_seconds"] == 26 * 3600
        assert pushed["wearables_ingest_newest_row_max_age_seconds"] == 48 * 3600
        # One age per participant and metric, from the coverage's newest hour.
        newest = dict(((p, m), hour.timestamp()) for p, m, hour in query(
            database_url, "SELECT participant, metric, date_trunc('hour', max(ts), 'UTC') "
                          "FROM raw_data GROUP BY 1, 2"))
        ages = {k: v for k, v in pushed.items()
                if k.startswith("wearables_ingest_newest_row_age_seconds{")}
        assert len(ages) == len(METRICS) == len(newest)
        for (participant, metric), hour in newest.items():
            age = ages[f'wearables_ingest_newest_row_age_seconds{{metric="{metric}",'
                       f'participant="{participant}"}}']
            assert abs(age - (time.time() - hour)) < 120
        # Per-file rows stay in the metrics file: the gateway gets no per-file counts.
        assert not any(k.startswith("wearables_ingest_rows_") for k in pushed)

        again = run_ingest("--full", PUSHGATEWAY_URL=gateway.url, STALE_AFTER_HOURS="72")
        assert again.returncode == 0, again.stderr
        pushed = gateway.samples()
        assert pushed["wearables_ingest_last_run_inserted_rows"] == 0
        assert pushed["wearables_ingest_last_run_already_present_rows"] == rows
        assert pushed["wearables_ingest_newest_row_max_age_seconds"] == 72 * 3600


def test_a_failed_run_pushes_its_failure_and_keeps_the_last_success(tmp_path, run_ingest):
    synth(tmp_path / DATA, "--days", "1")
    with pushgateway(tmp_path) as gateway:
        assert run_ingest(PUSHGATEWAY_URL=gateway.url).returncode == 0
        success = gateway.samples()["wearables_ingest_last_success_timestamp_seconds"]
        failed = run_ingest(PUSHGATEWAY_URL=gateway.url, DATA_DIR=str(tmp_path / "gone"))
        assert failed.returncode == 1
        pushed = gateway.samples()
        assert pushed["wearables_ingest_last_run_success"] == 0
        assert pushed['wearables_ingest_last_run_status{status="failed"}'] == 1
        assert pushed["wearables_ingest_last_success_timestamp_seconds"] == success


def test_an_unreachable_gateway_is_one_warning_and_the_load_is_unharmed(tmp_path, run_ingest,
                                                                         database_url):
    synth(tmp_path / DATA, "--days", "1")
    nobody = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on
    result = run_ingest(PUSHGATEWAY_URL=nobody)
    assert result.returncode == 0, result.stderr
    assert "ingestion complete" in result.stdout
    warnings = [line for line in logged(result.stderr) if line.startswith("WARNING")]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith(f"WARNING could not push the run's metrics to the "
                                  f"Pushgateway {nobody}: "), warnings
    assert stored(database_url) > 0
    # The metrics file is written all the same.
    prom = (tmp_path / "state" / "wearables_ingest.prom").read_text()
    assert "wearables_ingest_last_run_success 1\n" in prom


def test_a_bad_gateway_url_stops_the_run_before_it_starts(tmp_path, run_ingest):
    result = run_ingest(PUSHGATEWAY_URL="ftp://gateway:9091")
    assert result.returncode == 1
    assert logged(result.stderr) == [
        "ERROR PUSHGATEWAY_URL='ftp://gateway:9091' is not an http(s) URL such as "
        "http://pushgateway:9091"]


def test_prometheus_scrapes_the_pushed_rows_and_the_rejects_alert_fires(tmp_path, run_ingest,
                                                                        database_url):
    data = tmp_path / DATA
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    synth(data, "--days", "1", "--start", yesterday.isoformat())  # fresh: no stale alert
    with (data / "br.csv").open("a") as f:
        f.write(f"{yesterday}T23:59:59+00:00,fast\n")  # one row to reject
    with pushgateway(tmp_path) as gateway, prometheus(tmp_path, gateway) as prom:
        groups = prom.api("rules")["groups"]
        assert {r["name"] for g in groups for r in g["rules"]} == {
            "WearablesIngestLastRunFailed", "WearablesIngestNoRecentSuccess",
            "WearablesIngestNoNewRows", "WearablesIngestRowsRejected"}
        result = run_ingest(PUSHGATEWAY_URL=gateway.url)
        assert result.returncode == 0, result.stderr
        rows = stored(database_url)

        inserted = wait_until(lambda: prom.query("wearables_ingest_last_run_inserted_rows"),
                              30, "the pushed rows in Prometheus")
        assert inserted == {"": rows}
        ages = prom.query("wearables_ingest_newest_row_age_seconds")
        assert sorted(ages) == sorted(f'metric="{m}",participant="1"' for m in METRICS)
        firing = wait_until(
            lambda: prom.query('ALERTS{alertname="WearablesIngestRowsRejected",'
                               'alertstate="firing"}'),
            30, "the alert WearablesIngestRowsRejected firing")
        assert len(firing) == 1
        # Last night worked and the data is fresh: the other alerts stay quiet.
        assert prom.query('ALERTS{alertname!="WearablesIngestRowsRejected"}') == {}
