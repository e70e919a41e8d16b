"""Bulk wire format without I/O: fragments, chunking, reply classification, alias moves."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flusso.adapters.opensearch.bulk import (
    bulk_params,
    classify_bulk_reply,
    delete_action,
    index_action,
    plan_chunks,
)
from flusso.domain.generations import SwapAliases, plan_alias_swap


def test_an_index_action_is_a_meta_line_and_a_source_line_each_ending_in_newline():
    action = index_action("users_ab_1", "users", "42", '{"email":"ada@x.io"}')
    assert action.fragment == (
        '{"index":{"_index":"users_ab_1","_id":"42"}}\n{"email":"ada@x.io"}\n'
    )
    assert action.size == len(action.fragment.encode("utf-8"))


def test_a_delete_action_is_one_line_and_sizes_count_utf8_bytes():
    action = delete_action("users_ab_1", "users", "é")
    assert action.fragment == '{"delete":{"_index":"users_ab_1","_id":"é"}}\n'
    assert action.size == len(action.fragment) + 1


@pytest.mark.parametrize(
    ("sizes", "batch_size", "max_bytes", "expected"),
    [
        ([10] * 5, 2, 10_000, [2, 2, 1]),
        ([12, 12, 12, 12], 1000, 30, [2, 2]),
        ([10, 50, 10, 10], 1000, 30, [1, 1, 2]),
        ([40, 40, 40, 5, 5], 3, 100, [2, 3]),
        ([], 2, 10, []),
        ([50], 1, 10, [1]),
        ([5, 5, 5], 1, 100, [1, 1, 1]),
    ],
)
def test_chunks_respect_both_the_action_and_the_byte_caps(sizes, batch_size, max_bytes, expected):
    assert plan_chunks(sizes, batch_size, max_bytes) == expected


@pytest.mark.parametrize(
    ("pipeline", "refresh", "expected"),
    [
        ("p", True, "pipeline=p&refresh=true"),
        ("p", False, "pipeline=p"),
        (None, True, "refresh=true"),
        (None, False, ""),
    ],
)
def test_bulk_query_string_puts_pipeline_before_refresh(pipeline, refresh, expected):
    assert "&".join(f"{k}={v}" for k, v in bulk_params(pipeline, refresh).items()) == expected


def _actions():
    return [
        index_action("users_ab_1", "users", "1", "{}"),
        index_action("users_ab_1", "users", "42", "{}"),
        delete_action("users_ab_1", "users", "7"),
        index_action("users_ab_1", "users", "9", "{}"),
    ]


def test_a_reply_without_errors_rejects_nothing():
    reply = {"errors": False, "items": [{"index": {"status": 400}}]}
    assert classify_bulk_reply(reply, _actions()).rejected == ()


def test_a_400_item_is_rejected_and_a_missing_delete_succeeds():
    reply = {
        "errors": True,
        "items": [
            {"index": {"status": 201}},
            {
                "index": {
                    "status": 400,
                    "error": {"type": "mapper_parsing_exception", "reason": "bad"},
                }
            },
            {"delete": {"status": 404, "result": "not_found"}},
            {"index": {"status": 200}},
        ],
    }
    outcome = classify_bulk_reply(reply, _actions())
    assert [(r.index, r.id, r.reason) for r in outcome.rejected] == [("users_ab_1", "42", "bad")]
    assert outcome.transient == ()


def test_throttled_items_are_marked_for_resending_not_rejected():
    reply = {
        "errors": True,
        "items": [
            {"index": {"status": 429, "error": {"reason": "too many"}}},
            {"index": {"status": 201}},
            {"delete": {"status": 503}},
            {"index": {"status": 409}},
        ],
    }
    outcome = classify_bulk_reply(reply, _actions())
    assert outcome.transient == (0, 2)
    assert outcome.transient_reason == "too many"
    assert [(r.id, r.reason) for r in outcome.rejected] == [("9", "rejected with status 409")]


def test_items_beyond_the_actions_fall_back_to_their_own_index_and_id():
    reply = {
        "errors": True,
        "items": [{"create": {"status": 400, "_index": "x_1", "_id": "5"}}],
    }
    outcome = classify_bulk_reply(reply, [])
    assert [(r.action, r.index, r.id) for r in outcome.rejected] == [(None, "x_1", "5")]


def test_an_item_without_status_counts_as_accepted():
    reply = {"errors": True, "items": [{"update": {"_id": "1"}}]}
    assert classify_bulk_reply(reply, _actions()).rejected == ()


def alias_actions(alias: str, target: str, holders: list[str]) -> dict[str, Any] | None:
    """The `_aliases` body the sink sends for the domain's planned move (None: no call)."""
    actions = plan_alias_swap(alias, holders, target)
    return SwapAliases(hash_actions=actions, bare_actions=()).body() if actions else None


def test_alias_moves_are_skipped_when_already_exact_and_atomic_otherwise():
    assert alias_actions("users", "users_b_1", ["users_b_1"]) is None
    assert alias_actions("users", "users_b_1", []) == {
        "actions": [{"add": {"index": "users_b_1", "alias": "users"}}]
    }
    assert json.dumps(
        alias_actions("users", "users_new", ["users_old", "users_new", "x"])
    ) == json.dumps(
        {
            "actions": [
                {"remove": {"index": "users_old", "alias": "users"}},
                {"remove": {"index": "x", "alias": "users"}},
                {"add": {"index": "users_new", "alias": "users"}},
            ]
        }
    )


# -- reading replies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        '{"took": 3, "errors": false, "items": [{"index": {"_id": "1", "status": 201}}]}',
        '{"count": 18446744073709551616, "small": -9223372036854775809, "f": 1.5}',
        '{"x": "Zoë \\u2028", "y": [null, true, 1e400]}',
        "[]",
    ],
)
def test_replies_read_the_same_as_with_the_standard_library(reply: str):
    from flusso.adapters.opensearch.client import FastJSONSerializer

    assert FastJSONSerializer().loads(reply) == json.loads(reply)


def test_a_reply_that_is_not_json_is_a_serialization_error():
    from opensearchpy.exceptions import SerializationError

    from flusso.adapters.opensearch.client import FastJSONSerializer

    with pytest.raises(SerializationError):
        FastJSONSerializer().loads("<html>bad gateway</html>")
