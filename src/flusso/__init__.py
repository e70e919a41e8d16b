"""flusso keeps OpenSearch in sync with PostgreSQL from declarative config."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("flusso")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
