"""The Helm chart renders, and what it renders runs: the default values describe a config that
`flusso check --offline` accepts, the pod is probed on /healthz and /readyz, secrets come
from Kubernetes Secrets, and the optional ServiceMonitor and PrometheusRule are right.

No registry this project uses ships `helm`, so tests/helm/render.go renders the chart with
Go's text/template and the sprig functions (Debian's golang-go and sprig packages; .ci/run
installs them), the engine `helm template` uses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from flusso.entrypoints.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "flusso"
RULES = ROOT / "deploy" / "prometheus" / "flusso-alerts.yml"
GOPATH = "/usr/share/gocode"


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    sprig = Path(GOPATH, "src/github.com/Masterminds/sprig")
    if go is None or not sprig.is_dir():
        if os.environ.get("CI"):
            pytest.fail("go and sprig are missing; .ci/run installs golang-go and its packages")
        pytest.skip("needs Debian's golang-go, golang-github-masterminds-sprig-dev, "
                    "golang-k8s-sigs-yaml-dev")
    binary = tmp_path_factory.mktemp("helm") / "render"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOFLAGS": ""}
    built = subprocess.run(
        [go, "build", "-o", str(binary), str(ROOT / "tests" / "helm" / "render.go")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert built.returncode == 0, built.stderr
    return binary


def render(renderer: Path, *sets: str) -> list[dict[str, Any]]:
    args = [arg for assignment in sets for arg in ("--set", assignment)]
    result = subprocess.run(
        [str(renderer), "--release", "search", "--namespace", "apps", *args, str(CHART)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in YAML(typ="safe").load_all(result.stdout) if doc]


def render_error(renderer: Path, *sets: str) -> str:
    args = [arg for assignment in sets for arg in ("--set", assignment)]
    result = subprocess.run([str(renderer), *args, str(CHART)], capture_output=True, text=True)
    assert result.returncode != 0
    return result.stderr


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in docs if doc["kind"] == kind]
    return found


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (flusso,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return flusso


def test_every_rendered_object_is_named_and_typed(renderer):
    docs = render(renderer, "prometheusRule.enabled=true", "serviceMonitor.enabled=true",
                  "secret.create=true")
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == sorted([
        "ConfigMap", "Deployment", "PersistentVolumeClaim", "PrometheusRule", "Secret",
        "Service", "ServiceAccount", "ServiceMonitor",
    ])
    for doc in docs:
        assert doc["apiVersion"] and doc["metadata"]["name"].startswith("search-flusso")


def test_the_default_config_is_a_working_example_that_flusso_check_accepts(renderer, tmp_path):
    docs = render(renderer)
    data = one(docs, "ConfigMap")["data"]
    assert "[[index]]" in data["flusso.toml"]
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    result = CliRunner().invoke(
        cli, ["check", "--offline", "--config", str(tmp_path / "flusso.toml")], env={"NO_COLOR": "1"}
    )
    assert result.exit_code == 0, result.output
    assert "config valid" in result.output and "users" in result.output


def test_the_pod_is_probed_on_healthz_and_readyz_and_drains_within_its_grace_period(renderer):
    docs = render(renderer)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    flusso = container(docs)
    assert flusso["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert flusso["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"name": "http", "containerPort": 9464, "protocol": "TCP"} in flusso["ports"]
    assert pod["terminationGracePeriodSeconds"] == 30
    assert one(docs, "Deployment")["spec"]["replicas"] == 1
    assert one(docs, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    env = {item["name"]: item.get("value") for item in flusso["env"]}
    assert env["FLUSSO_CONFIG"] == "/etc/flusso/flusso.toml"
    assert env["FLUSSO_PRIVATE_ADDRESS"] == "127.0.0.1:9465"


def test_secrets_come_from_kubernetes_secrets_as_env_and_files(renderer):
    docs = render(renderer, "secret.existingSecret=flusso-env")
    assert [doc for doc in docs if doc["kind"] == "Secret"] == []
    assert container(docs)["envFrom"] == [{"secretRef": {"name": "flusso-env"}}]

    values = CHART / "values.yaml"
    text = values.read_text()
    with_mounts = text.replace(
        "secretMounts: []",
        "secretMounts:\n  - name: opensearch-tls\n    secretName: os-client-tls\n"
        "    mountPath: /etc/flusso-tls\n",
    )
    assert with_mounts != text
    override = Path(os.environ.get("TMPDIR", "/tmp")) / f"values-{os.getpid()}.yaml"
    override.write_text(with_mounts)
    try:
        result = subprocess.run([str(renderer), "-f", str(override), str(CHART)],
                                capture_output=True, text=True, check=True)
    finally:
        override.unlink()
    docs = [doc for doc in YAML(typ="safe").load_all(result.stdout) if doc]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "opensearch-tls", "secret": {"secretName": "os-client-tls", "defaultMode": 0o440}} in pod["volumes"]
    assert {"name": "opensearch-tls", "mountPath": "/etc/flusso-tls", "readOnly": True} in container(docs)["volumeMounts"]


def test_the_prometheus_rule_carries_the_repository_alert_rules(renderer):
    assert (CHART / "files" / "flusso-alerts.yml").read_text() == RULES.read_text(), (
        "copy deploy/prometheus/flusso-alerts.yml to deploy/helm/flusso/files/"
    )
    rule = one(render(renderer, "prometheusRule.enabled=true", "prometheusRule.labels.release=kps"), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["spec"] == YAML(typ="safe").load(RULES.read_text())
    assert "{{ $labels.instance }}" in rule["spec"]["groups"][0]["rules"][0]["annotations"]["summary"]


def test_the_service_monitor_scrapes_metrics_on_the_public_port(renderer):
    monitor = one(render(renderer, "serviceMonitor.enabled=true"), "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["apps"]}


def test_monitoring_objects_are_off_by_default_and_two_replicas_are_refused(renderer):
    kinds = {doc["kind"] for doc in render(renderer)}
    assert not {"ServiceMonitor", "PrometheusRule"} & kinds
    assert "replicaCount must be 1" in render_error(renderer, "replicaCount=2")


def test_https_surfaces_switch_the_probes_and_the_service_monitor_to_https(renderer):
    docs = render(renderer, "http.tls.existingSecret=flusso-http-tls", "serviceMonitor.enabled=true",
                  "serviceMonitor.basicAuth.username.name=flusso-env",
                  "serviceMonitor.basicAuth.username.key=FLUSSO_PUBLIC_USER")
    flusso = container(docs)
    assert flusso["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert flusso["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    env = {item["name"]: item.get("value") for item in flusso["env"]}
    assert env["FLUSSO_TLS_CERT_FILE"] == "/etc/flusso-http-tls/tls.crt"
    assert env["FLUSSO_TLS_KEY_FILE"] == "/etc/flusso-http-tls/tls.key"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "http-tls", "secret": {"secretName": "flusso-http-tls", "defaultMode": 0o440}} in pod["volumes"]
    (endpoint,) = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["basicAuth"] == {"username": {"name": "flusso-env", "key": "FLUSSO_PUBLIC_USER"}}
    plain = container(render(renderer))
    assert "scheme" not in plain["livenessProbe"]["httpGet"]
