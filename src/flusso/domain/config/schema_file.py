"""Load one `*.schema.yml` into an `IndexSchema`.

Parses text it is handed; reading the file is the caller's job. Every problem is a
`ConfigError` whose message starts with the file and index, names the field path and
says how to fix it; several problems are reported together (see `index_schema.report`
for their order). The loader itself lives in `index_schema/`, one module per concern.
"""

from __future__ import annotations

from flusso.domain.config._yaml12 import YamlSyntaxError, parse_yaml12
from flusso.domain.config.index_schema.document import load_document
from flusso.domain.config.index_schema.report import Report
from flusso.domain.config.model import IndexSchema

__all__ = ["parse_index_schema"]


def parse_index_schema(text: str, *, path: str, index: str) -> IndexSchema:
    """Parse, validate and convert one schema file's text. Raises ConfigError."""
    report = Report(text, path=path, index=index)
    try:
        root = parse_yaml12(text)
    except YamlSyntaxError as exc:
        raise report.syntax_error(exc) from None
    return load_document(report, root)
