"""Fixtures for this directory: the OpenSearch ones live in tests/opensearch_fixtures.py."""

from opensearch_fixtures import (  # noqa: F401  (fixtures are found by name)
    embedded_opensearch,
    opensearch_client,
    opensearch_url,
    stub_opensearch,
)
