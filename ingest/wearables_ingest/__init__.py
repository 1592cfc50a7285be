"""wearables-ingest: delta-load Fitbit-style intraday CSV files into a TimescaleDB hypertable."""



def __getattr__(name: str) -> str:
    # __version__ on demand: importlib.metadata costs a `status` run a tenth of its budget.
    if name != "__version__":
        raise AttributeError(f"module 'wearables_ingest' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("wearables-ingest")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "0+unknown"
