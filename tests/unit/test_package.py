"""The distribution: what `pip install .` puts on a machine."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from helpers import REPO


def test_the_wheel_installs_one_package_and_the_console_command(tmp_path: Path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("wearables_ingest-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("wearables_ingest-")}
    assert top_level == {"wearables_ingest"}  # no `db`, `config` or `source` of its own
    assert "wearables_ingest/schema.sql" in names  # the one schema source travels along
    assert {"wearables_ingest/storage.sql", "wearables_ingest/storage-apache.sql"} <= set(names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "wearables-ingest = wearables_ingest.cli:main" in \
        zipfile.ZipFile(wheel).read(entry_points).decode()


def test_version_and_module_entry_points_answer():
    version = subprocess.run([sys.executable, "-m", "wearables_ingest", "--version"],
                             capture_output=True, text=True, check=True)
    assert version.stdout.startswith("wearables-ingest 0.")
    design = subprocess.run([sys.executable, str(REPO / "ingest" / "ingest.py"), "--help"],
                            capture_output=True, text=True, check=True)
    assert design.stdout.startswith("usage: wearables-ingest")
