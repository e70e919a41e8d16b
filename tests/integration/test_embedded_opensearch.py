"""The embedded OpenSearch helper used by tests and the demo."""

from __future__ import annotations

import json
import urllib.request

import pytest
from devstack.opensearch import EmbeddedOpenSearch


def test_the_embedded_server_listens_on_loopback_and_stops_with_its_context():
    with EmbeddedOpenSearch() as server:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url + "/", timeout=10) as reply:
            assert "version" in json.loads(reply.read())
        process = server.process
        assert process is not None
        assert server.running
    assert process.poll() is not None
    assert not server.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
