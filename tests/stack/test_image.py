"""ingest/Dockerfile and the build context: hadolint, the base image, no secrets."""

from __future__ import annotations

import re
import shutil
import subprocess

from stack_helpers import (
    INGEST_DIR,
    VENV_BIN,
)

from helpers import REPO

# --- Dockerfile ----------------------------------------------------------------------------

def test_dockerfile_is_hadolint_clean():
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: install requirements-dev.txt (make setup)"
    result = subprocess.run([hadolint, "--no-color", str(INGEST_DIR / "Dockerfile")],
                            capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_dockerfile_is_the_python_image_with_cron_installing_the_project():
    text = (INGEST_DIR / "Dockerfile").read_text()
    assert "FROM python:3.11-slim\n" in text
    assert "--no-install-recommends cron" in text
    assert "pip install --no-cache-dir -r /tmp/requirements.txt" in text  # pinned, cached layer
    assert "pip install --no-cache-dir --no-deps /src" in text  # the package, installed
    assert "WORKDIR /app" in text and 'ENTRYPOINT ["/app/entrypoint.sh"]' in text
    # What the container runs from /app is copied in, and nothing else.
    copied = next(line for line in text.splitlines() if line.startswith("COPY ingest/ingest.py"))
    for name in ("ingest.py", "crontab", "entrypoint.sh", "cron-job.sh", "seed-data.sh"):
        assert f"ingest/{name}" in copied.split() and (INGEST_DIR / name).is_file()


def test_the_image_holds_no_secret_and_runs_the_loader_as_its_own_user():
    """No password or .env reaches the image: the build context is only the files the
    Dockerfile copies, and it sets no secret. The loader's user: a fixed uid, and
    /checkpoint its own, which a new named volume there inherits."""
    ignore = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"  # everything is left out (.env, data, .venv), but for:
    assert ignore[1:] == ["!pyproject.toml", "!README.md", "!ingest/",
                          "ingest/**/__pycache__", "ingest/*.egg-info"]
    text = (INGEST_DIR / "Dockerfile").read_text()
    for line in text.splitlines():
        if re.match(r"\s*(ENV|ARG|LABEL)\b", line):
            assert not re.search(r"PASS|SECRET|TOKEN|KEY", line, re.IGNORECASE), line
    assert "USER " not in text  # the entrypoint starts as root: cron needs it, then setpriv
    useradd = " ".join(text[text.index("useradd"):text.index(" ingest \\")].split())
    assert useradd == ("useradd --system --no-log-init --uid 10001 --user-group \\ "
                       "--home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin")
    assert "install -d -o ingest -g ingest -m 0755 /checkpoint" in text
    assert "ENV INGEST_RUN_AS=ingest\n" in text
