import json
import logging

from flusso.entrypoints.logs import JsonFormatter, TextFormatter, parse_directives


def test_directives_set_the_default_and_per_logger_levels():
    default, per = parse_directives("debug, flusso.app.pipeline=warn ,opensearch=TRACE")
    assert default == logging.DEBUG
    assert per == {"flusso.app.pipeline": logging.WARNING, "opensearch": 5}


def test_unparsable_directives_fall_back_to_info():
    assert parse_directives("loud,x=shouty") == (logging.INFO, {})
    assert parse_directives(None) == (logging.INFO, {})


def _record(**extra):
    record = logging.LogRecord("flusso.run", logging.INFO, __file__, 1, "HTTP surface %s", ("up",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_text_lines_carry_timestamp_level_logger_message_and_fields():
    line = TextFormatter().format(_record(addr="127.0.0.1:9464", surface="public"))
    stamp, rest = line.split(" ", 1)
    assert stamp.endswith("Z")
    assert rest == " INFO flusso.run: HTTP surface up addr=127.0.0.1:9464 surface=public"


def test_json_lines_nest_fields_under_fields():
    payload = json.loads(JsonFormatter().format(_record(index="users")))
    assert payload["level"] == "INFO"
    assert payload["target"] == "flusso.run"
    assert payload["fields"] == {"message": "HTTP surface up", "index": "users"}
    assert payload["timestamp"].endswith("Z")
