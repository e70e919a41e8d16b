"""The Grafana dashboard and the Prometheus alert rules under deploy/ use only metrics flusso
exports, and the rules pass `promtool check rules` and their `promtool test rules` tests.

The exported names come from the real registry of `entrypoints/metrics.py`, not a list.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from flusso.entrypoints.metrics import PrometheusObserver

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "flusso-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "flusso-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "flusso-dashboard.json"

# PromQL words that are not metric names: functions are recognised by their "(", these
# are the keywords and modifiers.
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "atan2", "inf", "nan",
}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGES = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w(])(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (labels, functions and keywords aside)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _GROUPING.sub("", text)
    text = _RANGES.sub("", text)
    return {name for name in _IDENT.findall(text) if name.lower() not in _KEYWORDS}


def exported_names() -> set[str]:
    """Every sample name flusso's registry exposes (histogram buckets and `_total` included)."""
    observer = PrometheusObserver(indexes=["users"])
    return {sample.name for family in observer.registry.collect() for sample in family.samples}


def rule_expressions() -> dict[str, str]:
    document = YAML(typ="safe").load(RULES.read_text())
    return {
        rule.get("alert") or rule["record"]: rule["expr"]
        for group in document["groups"]
        for rule in group["rules"]
    }


def dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found: dict[str, str] = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found[f"{panel['title']} / {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable["type"] == "query" and isinstance(query, str):
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
            found[f"${variable['name']}"] = inner.group(1) if inner else query
    return found


def test_the_metric_name_reader_sees_metrics_and_nothing_else():
    expr = (
        'histogram_quantile(0.95, sum by (le, job) (rate(a_bucket{job=~"$job", x="y z"}[5m])))'
        ' > 2 and on (instance) b_total offset 5m unless c'
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


@pytest.mark.parametrize(
    ("source", "expressions"), [("rules", rule_expressions), ("dashboard", dashboard_expressions)]
)
def test_every_metric_used_is_one_flusso_exports(source, expressions):
    exported = exported_names()
    used = {name: metric_names(expr) for name, expr in expressions().items()}
    assert all(used.values()), f"{source}: an expression selects no metric: {used}"
    unknown = {name: sorted(names - exported) for name, names in used.items() if names - exported}
    assert unknown == {}, f"{source} uses metrics flusso does not export"


def test_the_dashboard_shows_every_area_an_operator_watches():
    titles = " | ".join(p["title"].lower() for p in json.loads(DASHBOARD.read_text())["panels"])
    for area in ("lag", "changes / s", "documents / s", "flush latency", "error", "backfill"):
        assert area in titles, area


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is not on PATH; .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent
    )


def test_promtool_accepts_the_alert_rules():
    result = run_promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alert_rules_pass_their_promtool_unit_tests():
    result = run_promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_and_a_runbook_entry():
    tests = YAML(typ="safe").load(RULE_TESTS.read_text())
    tested = {
        case["alertname"] for group in tests["tests"] for case in group.get("alert_rule_test", [])
    }
    alerts = set(rule_expressions())
    assert alerts <= tested
    operating = (ROOT / "docs" / "operating.md").read_text()
    assert [a for a in sorted(alerts) if f"`{a}`" not in operating] == []


def test_promtool_finds_the_exposition_well_formed():
    observer = PrometheusObserver(indexes=["users"])
    body, _ = observer.render()
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=body.decode(), capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
