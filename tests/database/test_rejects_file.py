"""The loader's rejects file, run as a user would: private, and each rejected row once."""

from __future__ import annotations

import csv
import stat

from helpers import DATA, synth


def test_full_reruns_keep_one_private_copy_of_each_rejected_row(tmp_path, run_ingest):
    data = tmp_path / DATA
    synth(data, "--days", "1")
    with (data / "br.csv").open("a") as f:
        f.write("2024-01-02T00:00:00+00:00,fast\n")
    rejects = tmp_path / "state" / "rejects.csv"

    for args in ((), ("--full",), ("--full",), ("--full",)):
        proc = run_ingest(*args)
        assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    with rejects.open(newline="") as f:
        rows = list(csv.reader(f))
    assert [r[1:] for r in rows[1:]] == [
        [str(data / "br.csv"), "3", "value 'fast' is not a finite number",
         "2024-01-02T00:00:00+00:00,fast"]]


def test_the_rejects_file_stays_within_its_size_setting(tmp_path, run_ingest):
    data = tmp_path / DATA
    synth(data, "--days", "1")
    with (data / "br.csv").open("a") as f:
        f.writelines(f"2024-01-{d:02d}T00:00:00+00:00,fast{d}\n" for d in range(2, 30))
    proc = run_ingest(REJECTS_MAX_MB="0.001")
    assert proc.returncode == 0, proc.stderr
    state = tmp_path / "state"
    assert state.joinpath("rejects.csv").stat().st_size <= 1_000
    assert state.joinpath("rejects.csv.1").stat().st_size <= 1_000
    assert "fast29" in state.joinpath("rejects.csv").read_text()


def test_the_state_folder_holds_the_checkpoint_and_rejects_private(tmp_path, run_ingest):
    data = tmp_path / DATA
    synth(data, "--days", "1")
    with (data / "br.csv").open("a") as f:
        f.write("2024-01-02T00:00:00+00:00,fast\n")
    assert run_ingest().returncode == 0
    state = tmp_path / "state"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir()
             if p.name != "last_run.json.lock"}
    assert modes == {"last_run.json": 0o600, "rejects.csv": 0o600,
                     "wearables_ingest.prom": 0o644}
    metrics = state.joinpath("wearables_ingest.prom").read_text()
    assert "fast" not in metrics and 'participant="1"' in metrics
