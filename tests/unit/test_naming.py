"""Index naming and prefix validation."""

from __future__ import annotations

import pytest

from flusso.domain.errors import ConfigError
from flusso.domain.naming import (
    convenience_alias,
    generation_name,
    hash_alias,
    hash_alias_of,
    is_sibling_hash_alias,
    meta_index,
    next_generation,
    next_target,
    parse_generation,
    validate_prefix,
)


@pytest.mark.parametrize("prefix", ["", "dev_", "staging-", "env1_", "a", "1x", "x" * 50])
def test_valid_prefixes_are_accepted(prefix):
    validate_prefix(prefix)


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        ("Dev_", "uppercase"),
        ("_dev", "'_'"),
        ("-dev", "'-'"),
        ("+dev", "'+'"),
        ("de v", "' '"),
        ("dev,", "','"),
        ("dev/", "'/'"),
        ("dev*", "'*'"),
        ("x" * 51, "51 bytes"),
        ("é" * 26, "52 bytes"),
        ("dev#", "'#'"),
    ],
)
def test_invalid_prefixes_are_refused_with_the_reason(prefix, reason):
    with pytest.raises(ConfigError) as caught:
        validate_prefix(prefix)
    assert caught.value.message.startswith(f'invalid index prefix: index prefix "{prefix}" ')
    assert reason in caught.value.message


def test_an_illegal_character_is_reported_before_a_bad_first_character():
    with pytest.raises(ConfigError, match="contains '\\+'"):
        validate_prefix("+dev")


def test_names_are_built_from_prefix_logical_hash_and_generation():
    alias = hash_alias("dev_", "users", "ab12cd34")
    assert alias == "dev_users_ab12cd34"
    assert generation_name(alias, 3) == "dev_users_ab12cd34_3"
    assert convenience_alias("dev_", "users") == "dev_users"
    assert meta_index("dev_") == "dev_flusso_meta"
    assert meta_index("") == "flusso_meta"


@pytest.mark.parametrize(
    ("alias", "name", "expected"),
    [
        ("users_ab12", "users_ab12_3", 3),
        ("users_ab12", "users_ab12", None),
        ("users_ab12", "users_ab12_x", None),
        ("users_ab12", "users_ab12x_1", None),
        ("users_ab", "users_ab12_3", None),
        ("users_ab12", "users_ab12_", None),
        ("users_ab12", "users_ab12_+3", None),
        ("users_ab12", f"users_ab12_{2**64}", None),
        ("users_ab12", f"users_ab12_{2**64 - 1}", 2**64 - 1),
    ],
)
def test_parse_generation_reads_only_a_digit_suffix_of_that_alias(alias, name, expected):
    assert parse_generation(alias, name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("users_ab12_3", "users_ab12"),
        ("user_events_ab12_10", "user_events_ab12"),
        ("users_ab12", None),
        ("users", None),
        ("users_ab12_x", None),
    ],
)
def test_hash_alias_of_strips_a_numeric_generation_suffix(name, expected):
    assert hash_alias_of(name) == expected


def test_next_generation_skips_past_orphans_and_ignores_other_names():
    names = ["users_ab12_1", "users_ab12_4", "users_ab12x_9", "users_ab12", "other_7"]
    assert next_generation(names, "users_ab12") == 5
    assert next_generation([], "users_ab12") == 1


def test_next_target_never_reuses_a_number_even_after_a_manual_delete():
    assert next_target("users_ab12", 3, []) == 4
    assert next_target("users_ab12", 1, ["users_ab12_6"]) == 7


def test_sibling_hash_aliases_have_exactly_eight_hex_digits_after_the_logical_name():
    assert is_sibling_hash_alias("", "users", "users_0123abcd")
    assert is_sibling_hash_alias("dev_", "users", "dev_users_0123abcd")
    assert not is_sibling_hash_alias("", "users", "users_archive_0123abcd")
    assert not is_sibling_hash_alias("", "users", "users_0123ABCD")
    assert not is_sibling_hash_alias("", "users", "users_0123abcd_1")
    assert not is_sibling_hash_alias("dev_", "users", "users_0123abcd")
