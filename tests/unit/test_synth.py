"""The synthetic data generator: exact counts, determinism, plausible values, appending."""

from __future__ import annotations

import subprocess
from datetime import date, timedelta

import pandas as pd
import pytest

from helpers import SEED_COUNTS, SYNTH, run_synth
from wearables_ingest import synth


def read(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"ts": str})


def test_default_thirty_days_have_the_contract_row_counts(seed_data):
    counts = {m: sum(1 for _ in (seed_data / f"{m}.csv").open()) - 1 for m in synth.METRICS}
    assert counts == SEED_COUNTS


def test_files_have_the_header_and_sorted_utc_timestamps_within_the_days(seed_data):
    for metric in synth.METRICS:
        path = seed_data / f"{metric}.csv"
        assert path.open().readline() == "ts,value\n"
        frame = read(path)
        assert frame["ts"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00").all(), metric
        ts = pd.to_datetime(frame["ts"], utc=True)
        assert ts.is_monotonic_increasing and ts.is_unique, metric
        assert ts.min() >= pd.Timestamp("2024-01-01", tz="UTC")
        assert ts.max() < pd.Timestamp("2024-01-31", tz="UTC")
        assert pd.api.types.is_numeric_dtype(frame["value"]) and frame["value"].notna().all()


def test_values_are_physiologically_plausible(seed_data):
    v = {m: read(seed_data / f"{m}.csv")["value"] for m in synth.METRICS}
    assert v["hr"].between(40, 200).all() and 55 < v["hr"].median() < 80
    assert v["spo2"].between(90, 100).all() and v["spo2"].median() > 94
    assert v["br"].between(12, 20).all()
    assert v["hrv"].between(5, 200).all() and 20 < v["hrv"].median() < 90
    assert set(v["azm"].unique()) <= {0, 1, 2}
    assert 0.005 < (v["azm"] > 0).mean() < 0.2  # mostly zero, with active stretches
    assert v["activity"].between(300, 40_000).all()


def test_heart_rate_is_lower_at_night_than_in_the_afternoon(seed_data):
    hr = read(seed_data / "hr.csv")
    hour = pd.to_datetime(hr["ts"], utc=True).dt.hour
    assert hr["value"][hour.between(2, 5)].mean() + 8 < hr["value"][hour.between(14, 17)].mean()


def test_any_thirty_nights_hold_13248_sleep_minutes():
    for start in (date(2024, 1, 1), date(2023, 7, 19), date(2031, 2, 3)):
        nights = [synth.sleep_minutes(start + timedelta(days=i)) for i in range(30)]
        assert sum(nights) == 13_248 and set(nights) == {441, 442}


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path):
    run_synth(tmp_path / "a", "--days", "2", "--seed", "5")
    run_synth(tmp_path / "b", "--days", "2", "--seed", "5")
    run_synth(tmp_path / "c", "--days", "2", "--seed", "6")
    for metric in synth.METRICS:
        a = (tmp_path / "a" / f"{metric}.csv").read_bytes()
        assert a == (tmp_path / "b" / f"{metric}.csv").read_bytes()
    assert (tmp_path / "a" / "hr.csv").read_bytes() != (tmp_path / "c" / "hr.csv").read_bytes()


def test_appending_days_equals_generating_them_in_one_go(tmp_path):
    run_synth(tmp_path / "whole", "--days", "3", "--start", "2024-02-27")
    run_synth(tmp_path / "daily", "--days", "1", "--start", "2024-02-27")
    run_synth(tmp_path / "daily", "--append-days", "2")
    for metric in synth.METRICS:
        assert ((tmp_path / "whole" / f"{metric}.csv").read_bytes()
                == (tmp_path / "daily" / f"{metric}.csv").read_bytes()), metric


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SYNTH, *args], capture_output=True, text=True)


def test_prints_what_it_wrote(tmp_path):
    proc = cli("--out", str(tmp_path / "p"), "--days", "1", "--start", "2024-05-01")
    assert proc.returncode == 0, proc.stderr
    night = synth.sleep_minutes(date(2024, 5, 1))
    assert proc.stdout == (f"Wrote 2024-05-01 to 2024-05-01 in {tmp_path / 'p'}: activity 1, "
                           f"azm 1,440, br 1, hr 86,400, hrv {night}, spo2 {night}\n")


def test_refuses_to_overwrite_an_existing_data_set_without_force(tmp_path):
    out = tmp_path / "p"
    run_synth(out, "--days", "1")
    before = (out / "hr.csv").read_bytes()
    proc = cli("--out", str(out), "--days", "1", "--seed", "9")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"synth: error: {out}: already holds activity, azm")
    assert (out / "hr.csv").read_bytes() == before
    assert cli("--out", str(out), "--days", "1", "--seed", "9", "--force").returncode == 0
    assert (out / "hr.csv").read_bytes() != before
    assert not list(out.glob(".*.tmp"))


@pytest.mark.parametrize("damage, reason", [
    ("delete", "missing; --append-days needs a complete data set"),
    ("truncate", "does not end with a newline"),
])
def test_append_refuses_an_incomplete_data_set(tmp_path, damage, reason):
    out = tmp_path / "p"
    run_synth(out, "--days", "1")
    hrv = out / "hrv.csv"
    if damage == "delete":
        hrv.unlink()
    else:
        hrv.write_bytes(hrv.read_bytes()[:-3])
    proc = cli("--out", str(out), "--append-days", "1")
    assert proc.returncode == 1
    assert proc.stderr == f"synth: error: {hrv}: {reason}" + (
        "\n" if damage == "delete" else "; not appending to a partial file\n")


def test_bad_arguments_get_argparse_errors(tmp_path):
    for args in (["--days", "0"], ["--start", "yesterday"], ["--append-days", "-1"]):
        proc = cli("--out", str(tmp_path / "p"), *args)
        assert proc.returncode == 2 and "error:" in proc.stderr, args
