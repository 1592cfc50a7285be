"""wearables-ingest: delta-load Fitbit-style intraday CSV files into a TimescaleDB hypertable."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wearables-ingest")
except PackageNotFoundError:  # run from a source tree that was not installed
    __version__ = "0+unknown"
