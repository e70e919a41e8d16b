"""flusso keeps OpenSearch in sync with PostgreSQL from declarative config."""

# The one place the version is written: pyproject.toml reads it from here at build
# time (`tool.setuptools.dynamic`), so no command pays for `importlib.metadata`.
__version__ = "0.1.0"
