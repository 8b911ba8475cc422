"""deploy/k8s: every manifest validates against the Kubernetes schemas, and the pieces fit together."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate

from tests.deploy.dockerfile import Dockerfile
from tests.helpers import REPO, TEST_KEY
from thumbsvc.config import Settings

K8S = REPO / "deploy" / "k8s"
# The oldest and the newest Kubernetes minor kubernetes-validate has schemas for, validated strictly
# (unknown fields are errors, so a misspelt key cannot pass as valid).
VERSIONS = (kubernetes_validate.all_versions()[0], kubernetes_validate.latest_version())
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def resources() -> dict[str, dict[str, Any]]:
    """The kustomization's resources by kind."""
    found: dict[str, dict[str, Any]] = {}
    for name in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]:
        for doc in documents(K8S / name):
            assert doc["kind"] not in found, f"two {doc['kind']}s"
            found[doc["kind"]] = doc
    return found


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates(path: Path, version: str) -> None:
    docs = documents(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_validation_catches_a_misspelt_field() -> None:
    deployment = copy.deepcopy(resources()["Deployment"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in MANIFESTS} - {"secret.example.yaml"}
    # A placeholder key must never be applied with the rest.
    assert not any("secret" in name for name in listed)
    images = {image["name"] for image in kustomization["images"]}
    assert images == {c["image"].split(":")[0] for c in containers(resources()["Deployment"])}


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return result


def pod_labels() -> dict[str, str]:
    labels: dict[str, str] = resources()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    return labels


def test_deployment_probes_resources_and_security(dockerfile: Dockerfile) -> None:
    deployment = resources()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = containers(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}

    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    assert ports["http"] == int(env.get("THUMBSVC_PORT") or dockerfile.final.env["THUMBSVC_PORT"])

    assert container["resources"]["limits"]["memory"]
    assert container["resources"]["requests"]["cpu"]
    # One render thread per requested core (thumbsvc would otherwise count the node's cores).
    assert env["THUMBSVC_RENDER_SLOTS"] == str(container["resources"]["requests"]["cpu"])

    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    uid, _, gid = dockerfile.final.one("USER").args.partition(":")
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (int(uid), int(gid))
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}

    # Draining: after SIGTERM the pod keeps serving for the drain delay, then lets requests in flight finish,
    # all before the kubelet's SIGKILL.
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("THUMBSVC_") and v is not None})
    assert settings.drain_delay_s > 0
    assert pod["terminationGracePeriodSeconds"] >= settings.drain_delay_s + settings.shutdown_timeout_s + 5


def test_deployment_environment_is_valid_configuration() -> None:
    (container,) = containers(resources()["Deployment"])
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    secret_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert set(secret_refs) == {"THUMBSVC_KEY"}
    secret = documents(K8S / "secret.example.yaml")[0]
    assert secret_refs["THUMBSVC_KEY"]["name"] == secret["metadata"]["name"]
    assert secret_refs["THUMBSVC_KEY"]["key"] in secret["stringData"]
    settings = Settings.from_env(
        {**{k: v for k, v in env.items() if k.startswith("THUMBSVC_")}, "THUMBSVC_KEY": TEST_KEY}
    )
    assert settings.render_slots == int(env["THUMBSVC_RENDER_SLOTS"])


def test_service_hpa_and_pdb_point_at_the_deployment() -> None:
    found = resources()
    deployment = found["Deployment"]
    labels = pod_labels()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()

    service = found["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = containers(deployment)
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in container["ports"]}

    hpa = found["HorizontalPodAutoscaler"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]

    pdb = found["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # The PDB must leave at least one pod when the HPA is at its minimum.
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
