"""The Kubernetes manifests render, match the Kubernetes schemas and obey the policy;
and the policy really catches each kind of violation."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import REPO

Objects = list[dict[str, Any]]


def _no_kubectl(reason: str) -> None:
    """Skip on a laptop without kubectl; in CI, where the overlays must be checked, fail."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"kubectl is not installed: {reason}; CI must have kubectl with kustomize.",
                    pytrace=False)
    pytest.skip(f"kubectl is not installed: {reason}")


def _render(k8s_check, target) -> Objects:
    if target.path != k8s_check.BASE and k8s_check.kubectl_path() is None:
        _no_kubectl(f"overlay {target.name} cannot be rendered")
    return k8s_check.render(target)


@pytest.fixture(scope="module")
def base(k8s_check) -> Objects:
    """The base assembled without kubectl, so the policy tests run everywhere."""
    return k8s_check.assemble_base()


def _find(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_target_renders_valid_and_compliant(k8s_check, name):
    target = next(t for t in k8s_check.TARGETS if t.name == name)
    objects = _render(k8s_check, target)
    assert objects
    assert k8s_check.schema_errors(objects) == []
    assert k8s_check.check_policy(objects, min_replicas=target.min_replicas,
                                  pinned_images=target.pinned_images) == []


def test_every_service_has_its_objects(base):
    for service in ("identity", "permissions", "tracking", "notifier"):
        for kind, name in [("Deployment", f"{service}-web"), ("Deployment", f"{service}-worker"),
                           ("Service", service), ("HorizontalPodAutoscaler", f"{service}-web"),
                           ("PodDisruptionBudget", f"{service}-web"), ("Job", f"{service}-migrate")]:
            _find(base, kind, name)
    for name in ("identity-sweep-inactive", "permissions-expire-requests", "identity-rotate-keys",
                 "identity-purge-tokens"):
        _find(base, "CronJob", name)
    ingress = _find(base, "Ingress", "identity")
    assert ingress["spec"]["tls"][0]["secretName"]


def test_assembled_base_equals_kustomize_output(k8s_check, base):
    if k8s_check.kubectl_path() is None:
        _no_kubectl("nothing to compare the assembled base with")
    rendered = k8s_check.render_kustomize(k8s_check.BASE)

    def keyed(objects: Objects) -> dict[tuple[str, str], dict[str, Any]]:
        return {(o["kind"], o["metadata"]["name"]): o for o in objects}

    assert keyed(rendered) == keyed(base)


def test_prod_overlay_is_production_shaped(k8s_check):
    prod = _render(k8s_check, next(t for t in k8s_check.TARGETS if t.name == "prod"))
    config = _find(prod, "ConfigMap", "portico-config")["data"]
    assert config["PGSSLMODE"] in {"require", "verify-ca", "verify-full"}
    assert config["OIDC_ISSUER"].startswith("https://")
    assert config["PORTICO_ENV"] == "production"  # development keys refused at start-up
    # A company's first enrollment founds it: the help desk reviews enrollments first.
    assert config["ENROLLMENT_REVIEW_ALL"] == "true"
    for service in ("identity", "permissions", "tracking", "notifier"):
        hpa = _find(prod, "HorizontalPodAutoscaler", f"{service}-web")["spec"]
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
        assert _find(prod, "PodDisruptionBudget", f"{service}-web")["spec"]["minAvailable"] == 1
        assert _find(prod, "Deployment", f"{service}-worker")["spec"]["replicas"] >= 2
    assert not [o for o in prod if o["kind"] in {"StatefulSet"}], "prod runs no database in-cluster"


def test_dev_overlay_runs_one_of_each_with_its_dependencies(k8s_check):
    dev = _render(k8s_check, next(t for t in k8s_check.TARGETS if t.name == "dev"))
    for service in ("identity", "permissions", "tracking", "notifier"):
        hpa = _find(dev, "HorizontalPodAutoscaler", f"{service}-web")["spec"]
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 1)
        assert _find(dev, "Deployment", f"{service}-worker")["spec"]["replicas"] == 1
    _find(dev, "StatefulSet", "postgres")
    _find(dev, "Deployment", "redis")
    _find(dev, "Deployment", "mailpit")
    assert _find(dev, "ConfigMap", "portico-config")["data"]["SMTP_HOST"] == "mailpit"


def test_secret_example_is_placeholders_only_and_never_applied():
    example = yaml.safe_load((REPO / "deploy/k8s/secrets.example.yaml").read_text())
    assert example["kind"] == "Secret" and example["metadata"]["name"] == "portico-secrets"
    for key, value in example["stringData"].items():
        assert "REPLACE_ME" in value, key
    for kustomization in (REPO / "deploy/k8s").rglob("kustomization.yaml"):
        resources = yaml.safe_load(kustomization.read_text()).get("resources", [])
        assert not [r for r in resources if "secret" in r], kustomization


def test_every_secret_key_referenced_is_in_the_example(base):
    example = yaml.safe_load((REPO / "deploy/k8s/secrets.example.yaml").read_text())
    referenced = set()
    for text in [yaml.safe_dump(o) for o in base]:
        for doc in yaml.safe_load_all(text):
            _collect_secret_keys(doc, referenced)
    assert referenced and referenced <= set(example["stringData"])


def _collect_secret_keys(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("secretKeyRef")
        if isinstance(ref, dict) and ref.get("name") == "portico-secrets":
            found.add(ref["key"])
        for value in node.values():
            _collect_secret_keys(value, found)
    elif isinstance(node, list):
        for value in node:
            _collect_secret_keys(value, found)


# --- the policy catches what it must -----------------------------------------------------

def _web(objects: Objects) -> dict[str, Any]:
    return _find(objects, "Deployment", "identity-web")["spec"]["template"]["spec"]["containers"][0]


def _worker(objects: Objects) -> dict[str, Any]:
    return _find(objects, "Deployment", "tracking-worker")["spec"]["template"]["spec"]["containers"][0]


def _cron(objects: Objects) -> dict[str, Any]:
    cron = _find(objects, "CronJob", "identity-rotate-keys")
    return cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def _ingress_paths(objects: Objects) -> list[dict[str, Any]]:
    return _find(objects, "Ingress", "identity")["spec"]["rules"][0]["http"]["paths"]


def _drop_default_deny(objects: Objects) -> None:
    objects.remove(_find(objects, "NetworkPolicy", "default-deny-all"))


def _add_secret(objects: Objects) -> None:
    objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "leak"},
                    "stringData": {"event-sealing-key": "x"}})


BREAKAGES: dict[str, tuple[Callable[[Objects], None], str]] = {
    "no liveness": (lambda o: _web(o).pop("livenessProbe"), "identity-web container web: no livenessProbe"),
    "no readiness": (lambda o: _worker(o).pop("readinessProbe"), "tracking-worker container worker: no readinessProbe"),
    "no startup on web": (lambda o: _web(o).pop("startupProbe"), "identity-web container web: no startupProbe"),
    "no memory limit": (lambda o: _web(o)["resources"]["limits"].pop("memory"), "no memory limit"),
    "no cpu request on a cronjob": (lambda o: _cron(o)["resources"]["requests"].pop("cpu"),
                                    "CronJob/identity-rotate-keys container rotate-keys: no cpu request"),
    "writable root": (lambda o: _web(o)["securityContext"].update(readOnlyRootFilesystem=False),
                      "readOnlyRootFilesystem is not true"),
    "privilege escalation": (lambda o: _worker(o)["securityContext"].pop("allowPrivilegeEscalation"),
                             "allowPrivilegeEscalation is not false"),
    "capabilities kept": (lambda o: _cron(o)["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
                          "capabilities do not drop ALL"),
    "seccomp unconfined": (lambda o: _web(o)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
                           "seccompProfile is not RuntimeDefault"),
    "root allowed": (lambda o: _web(o)["securityContext"].update(runAsNonRoot=False), "runAsNonRoot is not true"),
    "literal secret env": (lambda o: _web(o)["env"].append({"name": "EVENT_SEALING_KEY", "value": "abc"}),
                           "env EVENT_SEALING_KEY holds a literal secret value"),
    "password in a url": (lambda o: _find(o, "ConfigMap", "portico-config")["data"].update(
                              DATABASE_URL="postgresql://u:hunter2@db/identity"),
                          "key DATABASE_URL holds credentials in a URL"),
    "secret object": (_add_secret, "Secret/leak: a Secret is in the manifests"),
    "no default deny": (_drop_default_deny, "no default-deny NetworkPolicy"),
    "no hpa": (lambda o: o.remove(_find(o, "HorizontalPodAutoscaler", "notifier-web")),
               "Deployment/notifier-web: no HorizontalPodAutoscaler"),
    "no pdb": (lambda o: o.remove(_find(o, "PodDisruptionBudget", "tracking-web")),
               "Deployment/tracking-web: no PodDisruptionBudget"),
    "component label lost": (lambda o: _find(o, "NetworkPolicy", "allow-dns-egress")["metadata"]["labels"]
                             .pop("app.kubernetes.io/component"),
                             "NetworkPolicy/allow-dns-egress: no app.kubernetes.io/component label"),
    "an identity key not given": (
        lambda o: _cron(o).update(env=[v for v in _cron(o)["env"]
                                       if v["name"] != "ACCOUNT_FINGERPRINT_KEY"]),
        "CronJob/identity-rotate-keys container rotate-keys: ACCOUNT_FINGERPRINT_KEY is not set "
        "from the Secret portico-secrets"),
    "a key given literally": (
        lambda o: _worker(o).update(env=[v if v["name"] != "EVENT_SEALING_KEY"
                                         else {"name": v["name"], "value": "x"}
                                         for v in _worker(o)["env"]]),
        "tracking-worker container worker: EVENT_SEALING_KEY is not set from the Secret"),
    "everything routed": (lambda o: _ingress_paths(o).append({"path": "/", "pathType": "Prefix"}),
                          "Ingress/identity: path / (Prefix) routes /metrics to the public"),
    "readyz routed": (lambda o: _ingress_paths(o).append({"path": "/readyz/",
                                                          "pathType": "Prefix"}),
                      "Ingress/identity: path /readyz/ (Prefix) routes /readyz to the public"),
    "pod label lost": (lambda o: _find(o, "Deployment", "permissions-web")["spec"]["template"]["metadata"]
                       ["labels"].pop("app.kubernetes.io/part-of"),
                       "Deployment/permissions-web: pod template lacks the label"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_policy_reports_each_violation(k8s_check, base, breakage):
    objects = copy.deepcopy(base)
    assert k8s_check.check_policy(objects) == []
    breaking, expected = BREAKAGES[breakage]
    breaking(objects)
    violations = k8s_check.check_policy(objects)
    assert any(expected in v for v in violations), violations


def test_policy_requires_two_replicas_in_prod(k8s_check, base):
    objects = copy.deepcopy(base)
    assert k8s_check.check_policy(objects, min_replicas=2) == []
    _find(objects, "HorizontalPodAutoscaler", "identity-web")["spec"]["minReplicas"] = 1
    _find(objects, "Deployment", "notifier-worker")["spec"]["replicas"] = 1
    violations = k8s_check.check_policy(objects, min_replicas=2)
    assert "Deployment/identity-web: 1 replica(s), at least 2 required" in violations
    assert "Deployment/notifier-worker: 1 replica(s), at least 2 required" in violations


def test_policy_rejects_unpinned_images_in_overlays(k8s_check, base):
    objects = copy.deepcopy(base)  # the base names the image "portico", without a tag
    violations = k8s_check.check_policy(objects, pinned_images=True)
    assert any("image 'portico' is not pinned" in v for v in violations)
    for obj in objects:
        for template in k8s_check.pod_templates(obj):
            for container in template["spec"]["containers"]:
                container["image"] = "registry.example.com/portico:latest"
    assert any(":latest' is not pinned" in v for v in k8s_check.check_policy(objects, pinned_images=True))


def test_knobs_named_like_secrets_are_not_flagged(k8s_check, base):
    objects = copy.deepcopy(base)
    _find(objects, "ConfigMap", "portico-config")["data"].update(
        KEY_ACTIVATION_DELAY="300", ACCESS_TOKEN_TTL="600", TOKEN_RATE_LIMIT_IP="600 per minute")
    assert k8s_check.check_policy(objects) == []


def test_schema_validation_reports_a_bad_object(k8s_check, base):
    objects = copy.deepcopy(base)
    _web(objects)["livenessProbe"]["httpGet"]["prot"] = 8000
    _find(objects, "Service", "identity")["spec"]["ports"][0]["port"] = "eighty"
    errors = k8s_check.schema_errors(objects)
    assert len(errors) == 2, errors
    assert any(e.startswith("Deployment/identity-web: schema:") and "prot" in e for e in errors)
    assert any(e.startswith("Service/identity: schema:") for e in errors)


def test_check_script_passes_and_fails(k8s_check, base, monkeypatch, capsys):
    assert k8s_check.main([]) == 0
    broken = copy.deepcopy(base)
    _web(broken).pop("livenessProbe")
    monkeypatch.setattr(k8s_check, "render", lambda target: broken)
    assert k8s_check.main([]) == 1
    assert "no livenessProbe" in capsys.readouterr().out


def test_the_keys_checked_are_the_keys_each_service_declares(k8s_check):
    """The policy's table of keys per service is what the settings classes mark secret
    (issue 24: ACCOUNT_FINGERPRINT_KEY and ACCESS_CODE_KEY were never set in production)."""
    import importlib

    from services.common.config import secret_settings

    for service, names in k8s_check.SERVICE_SECRETS.items():
        module = importlib.import_module(f"services.{service}.settings")
        assert set(names) == set(secret_settings(getattr(module, f"{service.capitalize()}Settings")))
    assert set(k8s_check.SERVICE_SECRETS) == {"identity", "permissions", "tracking", "notifier"}


def test_every_key_is_in_the_secret_example():
    example = yaml.safe_load((REPO / "deploy/k8s/secrets.example.yaml").read_text())["stringData"]
    for name in ("event-sealing-key", "key-encryption-key", "client-secret-pepper",
                 "account-fingerprint-key", "access-code-key"):
        assert example[name] == "REPLACE_ME"


def test_the_public_ingress_routes_no_internal_endpoint(k8s_check, base):
    """Issue 24: /metrics and /readyz were reachable through the public ingress."""
    ingress = _find(base, "Ingress", "identity")
    assert k8s_check.check_policy([ingress, *[o for o in base if o is not ingress]]) == []
    paths = [(p["path"], p["pathType"]) for p in _ingress_paths(base)]
    assert ("/", "Prefix") not in paths
    for internal in ("/metrics", "/readyz", "/healthz"):
        assert not [p for p, kind in paths
                    if internal == p or (kind == "Prefix" and internal.startswith(p + "/"))]


def test_every_identity_route_is_routed_unless_internal(make_app, base):
    """The ingress lists identity's public prefixes: a page missing from it would be
    unreachable, an internal endpoint in it public."""
    internal = {"/metrics", "/readyz", "/healthz"}
    paths = _ingress_paths(base)

    def routed(rule: str) -> bool:
        return any(rule == p["path"] if p["pathType"] == "Exact"
                   else rule == p["path"] or rule.startswith(p["path"] + "/") for p in paths)

    rules = {r.rule for r in make_app("identity").url_map.iter_rules()}
    assert internal <= rules
    assert sorted(r for r in rules - internal if not routed(r)) == []
    assert sorted(r for r in internal if routed(r)) == []
