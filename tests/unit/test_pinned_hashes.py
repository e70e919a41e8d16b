"""Index hashes, mappings, locks and document SQL of existing schemas never change.

The content hash names the index: a different hash for the same schema would rebuild
every index of every deployment on upgrade. The values below were computed before the
loader and the type registry were restructured; each must stay exactly as pinned.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pinned_corpus import ROOT, corpus

from flusso.adapters.postgres.document_sql import CatalogFacts, facts_needed, plan_document_sql
from flusso.domain.config.config_file import parse_config
from flusso.domain.config.lock import decode_lock, encode_lock
from flusso.domain.config.model import Deployment, IndexConfig, SourceConfig
from flusso.domain.config.schema_file import parse_index_schema
from flusso.domain.hashing import content_hash, schema_bytes
from flusso.domain.mapping import build_index_body, index_mapping

# name: (content hash, digest of the hashed byte stream, digest of the index body,
#        digest of a one-index lock, digest of the document SQL and its parameters)
PINNED = {
    "examples/orders.schema.yml": ('b332334d', 'b9c702fe1e78e7b6', '9baf06da5facdec1', '74378ea95cea77ce', 'b1fd711d60f0f517'),
    "examples/products.schema.yml": ('61ecab00', '3de147fa0ee4f0f3', 'c0e295d6f965af8e', 'b36133dafb4e2283', '36f124cb1f0f292e'),
    "examples/users.schema.yml": ('a1a79920', '144c8ff48a6aa252', 'de9651aeb95bb9d3', 'defb6235b42fdd0f', '267100a1f0e5f2a5'),
    "worked_example": ('4f961939', 'c03dd7b75594dabe', '711400d532a1d004', 'd84c830a9ca3bc74', 'e55236380bb56a66'),
    "fuzz_seed_0": ('ae8f610e', 'f9536055dac04141', '1046a57e8ab39f2c', '6617feeb25d27955', 'eeeaacc801e192a8'),
    "fuzz_seed_1": ('9ad577ec', '43130bfb963166ee', '09d39f556040e435', '421fa225f9eb583e', '653aabc7e83de0d3'),
    "fuzz_seed_2": ('09566c79', '6a86efe057d79990', '8b5e357943a58ca1', 'd30bedc7d29aef2b', '8571294ba40a14f5'),
    "jsonschema_example_0": ('49cb1d5f', '61796db35d85788d', '9cd328879bb3e0fc', '7427b687a8731c9c', '30088624727f6ccc'),
    "jsonschema_example_1": ('264a0ade', '822c59f9a3d7a9ac', 'e7456beb1a800128', '922590d01072b301', 'b1b649d7cf117909'),
    "every_type": ('8232b524', 'f3a1cb94a7bc7d51', '2ea77e5e06dc64b8', '73dfe582219b0d4f', 'fc33ddc311183166'),
    "soft_delete_by_field": ('8b165a23', 'b23a9f2c015a9e61', '9cd7fac78c15b4d0', '61d70c5b7f543370', 'db64daec8f998dba'),
}
EXAMPLES_LOCK = "dc9b7b9a622ce714"


def _digest(data: bytes | str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:16]


def _lock_of(schema) -> str:
    index = IndexConfig(name="pinned", enabled=True, schema=schema)
    return encode_lock(Deployment(source=SourceConfig(), indexes=(index,)), flusso_version="0")


def _sql_of(schema) -> str:
    needed = facts_needed(schema)
    facts = CatalogFacts(
        primary_keys=dict.fromkeys(needed.tables, "id"),
        column_types=dict.fromkeys(needed.columns, "text"),
    )
    planned = plan_document_sql(schema, facts)
    return json.dumps([planned.object_sql, planned.from_sql, planned.conditions, planned.params])


def _measure(text: str) -> tuple[str, ...]:
    schema = parse_index_schema(text, path="x.schema.yml", index="x")
    body = build_index_body(index_mapping("x", schema))
    return (
        content_hash(schema),
        _digest(schema_bytes(schema)),
        _digest(json.dumps(body, sort_keys=True)),
        _digest(_lock_of(schema)),
        _digest(_sql_of(schema)),
    )


def test_the_corpus_is_the_pinned_one():
    assert sorted(corpus()) == sorted(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_hash_mapping_lock_and_sql_are_as_pinned(name):
    assert _measure(corpus()[name]) == PINNED[name]


@pytest.mark.parametrize("name", sorted(PINNED))
def test_the_lock_round_trips_to_the_same_hash(name):
    schema = parse_index_schema(corpus()[name], path="x.schema.yml", index="x")
    decoded = decode_lock(_lock_of(schema), path="flusso.lock")
    assert decoded.indexes[0].schema == schema
    assert content_hash(decoded.indexes[0].schema) == PINNED[name][0]


def test_the_examples_lock_is_as_pinned():
    path = ROOT / "examples" / "flusso.toml"
    deployment = parse_config(
        path.read_text(encoding="utf-8"), path=str(path),
        read_schema=lambda schema: Path(schema).read_text(encoding="utf-8"),
    )
    assert _digest(encode_lock(deployment, flusso_version="0.0.0")) == EXAMPLES_LOCK
