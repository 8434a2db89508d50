"""`make k8s-check`: render the Kubernetes manifests, validate them against the
Kubernetes JSON schemas (offline) and enforce Portico's deployment policy.

    python deploy/k8s_check.py            # base and every overlay
    python deploy/k8s_check.py --list     # the rules

Rendering uses ``kubectl kustomize``. Where kubectl is absent the overlays cannot be
rendered (the script says so); the base is then assembled from its files directly,
applying the two kustomize features it uses (namespace and labels), and still checked.

The policy (:func:`check_policy`) returns one line per violation; an empty list means
the manifests comply. tests/deploy runs the same functions under pytest.
"""

from __future__ import annotations

import argparse
import copy
import functools
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

K8S_DIR = Path(__file__).resolve().parent / "k8s"
BASE = K8S_DIR / "base"
OVERLAYS = {"dev": K8S_DIR / "overlays" / "dev", "prod": K8S_DIR / "overlays" / "prod"}

# Long-running workloads: probes are required. Jobs and CronJobs run to completion.
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
RUN_TO_COMPLETION = {"Job", "CronJob"}
PART_OF = "app.kubernetes.io/part-of"
COMPONENT = "app.kubernetes.io/component"

# An env/ConfigMap name that looks like it holds a secret ...
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|PEPPER|TOKEN|CREDENTIAL|(^|_)KEY)($|_)")
# ... unless it is plainly a knob about one (ACCESS_TOKEN_TTL, KEY_ACTIVATION_DELAY, HEARTBEAT_FILE,
# TOKEN_URL: a URL with credentials in it is caught by URL_CREDENTIALS below).
NOT_SECRET_SUFFIX = re.compile(
    r"_(TTL|DELAY|TIMEOUT|SECONDS|FILE|DIR|PATH|SCOPE|LIMIT(_[A-Z]+)?|ENABLED|AUDIENCE|LIFETIME|URL)$"
)
# user:password@ inside a URL.
URL_CREDENTIALS = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
# The keys each service's processes load (its settings' ``secret=True`` variables, which
# tests/deploy compares with this table): every container of that service must get each
# from the Secret, or in production (PORTICO_ENV=production) it refuses to start, and in
# development it would run on the key anyone can read in the source.
SERVICE_SECRETS = {
    "identity": ("EVENT_SEALING_KEY", "KEY_ENCRYPTION_KEY", "CLIENT_SECRET_PEPPER",
                 "ACCOUNT_FINGERPRINT_KEY", "ACCESS_CODE_KEY"),
    "permissions": ("EVENT_SEALING_KEY",),
    "tracking": ("EVENT_SEALING_KEY",),
    "notifier": ("EVENT_SEALING_KEY",),
}
SECRET_OBJECT = "portico-secrets"  # noqa: S105 (the Secret's name, not a value)
NAME = "app.kubernetes.io/name"
# Paths the public Ingress must never route: operators' and the kubelet's endpoints.
INTERNAL_PATHS = ("/metrics", "/readyz")

RULES = """\
every container of a Deployment/StatefulSet/DaemonSet: readinessProbe and livenessProbe
every container of a Portico web pod (component=web): startupProbe too
every container and init container (workloads, Jobs, CronJobs): cpu+memory requests and limits;
  runAsNonRoot, readOnlyRootFilesystem, allowPrivilegeEscalation false, capabilities drop ALL,
  seccompProfile RuntimeDefault; no privileged, no host namespaces
every Portico pod template carries app.kubernetes.io/part-of=portico (NetworkPolicies select on it)
every object carries app.kubernetes.io/component (the documented apply order selects on it)
no Secret object is rendered; no literal value for a secret-like env var or ConfigMap key;
  no user:password@ in any env value or ConfigMap value
every container of a Portico service gets each key that service needs (SERVICE_SECRETS)
  from the Secret portico-secrets
an Ingress routes no internal path (/metrics, /readyz): only exact or prefix paths that
  cannot match them
a default-deny NetworkPolicy (all pods, Ingress and Egress, no rules) exists
every Portico web Deployment has a HorizontalPodAutoscaler and a PodDisruptionBudget
prod: every Portico Deployment runs at least 2 replicas (the HPA's minimum where one scales it)
overlays: every image has a tag or digest, never :latest"""


@dataclass(frozen=True)
class Target:
    name: str
    path: Path
    min_replicas: int = 1
    pinned_images: bool = False


TARGETS = [
    Target("base", BASE),
    Target("dev", OVERLAYS["dev"], pinned_images=True),
    Target("prod", OVERLAYS["prod"], min_replicas=2, pinned_images=True),
]


class RenderError(Exception):
    """kustomize could not render a directory."""


# --- rendering ---------------------------------------------------------------------------

def kubectl_path() -> str | None:
    return shutil.which("kubectl")


def render_kustomize(path: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize path`` produces."""
    kubectl = kubectl_path()
    if kubectl is None:
        raise RenderError("kubectl not found")
    proc = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True,
                          timeout=120, check=False)
    if proc.returncode != 0:
        raise RenderError(f"kubectl kustomize {path}: {proc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def pod_templates(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod template(s) of a workload, Job or CronJob (none for other kinds)."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind in LONG_RUNNING or kind == "Job":
        yield spec.get("template") or {}
    elif kind == "CronJob":
        yield ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}


def assemble_base(path: Path = BASE) -> list[dict[str, Any]]:
    """The base without kubectl: its resource files with the namespace and labels applied.

    Covers only what deploy/k8s/base uses (``namespace``, ``labels`` with
    includeTemplates); anything else in its kustomization is refused loudly.
    """
    kustomization = yaml.safe_load((path / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "namespace", "labels", "resources"}
    unknown = set(kustomization) - known
    if unknown:
        raise RenderError(f"cannot assemble {path} without kubectl: uses {sorted(unknown)}")
    namespace = kustomization.get("namespace")
    objects = []
    for resource in kustomization.get("resources", []):
        for doc in yaml.safe_load_all((path / resource).read_text()):
            if not doc:
                continue
            if namespace:
                if doc["kind"] == "Namespace":
                    doc["metadata"]["name"] = namespace
                else:
                    doc["metadata"]["namespace"] = namespace
            for entry in kustomization.get("labels", []):
                pairs = entry.get("pairs", {})
                doc["metadata"].setdefault("labels", {}).update(pairs)
                if entry.get("includeTemplates"):
                    if doc["kind"] == "CronJob":
                        job = doc["spec"]["jobTemplate"].setdefault("metadata", {})
                        job.setdefault("labels", {}).update(pairs)
                    for template in pod_templates(doc):
                        template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            objects.append(doc)
    return objects


def render(target: Target) -> list[dict[str, Any]]:
    """Render ``target``; the base falls back to :func:`assemble_base` without kubectl."""
    if kubectl_path() is None and target.path == BASE:
        return assemble_base(target.path)
    return render_kustomize(target.path)


# --- schema validation -------------------------------------------------------------------

def kubernetes_version() -> str:
    """The newest Kubernetes version whose schemas kubernetes-validate ships."""
    from kubernetes_validate.utils import latest_version

    return latest_version()


@functools.cache
def _validator(api_version: str, kind: str, version: str):
    """A strict jsonschema validator for one kind, built once.

    Same schema files and lookup as ``kubernetes_validate.validate``, which rebuilds the
    (large) definitions registry on every call; caching makes the check take seconds.
    Returns None when the package has no schema for the kind.
    """
    import jsonschema
    from kubernetes_validate.utils import all_versions, major_minor, schema_contents
    from referencing import Registry, Resource

    schema_version = [v for v in all_versions() if major_minor(v) <= major_minor(version)][-1]
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema_dir = f"kubernetes-json-schema/v{schema_version}-local-strict"
    try:
        schema = schema_contents(f"{schema_dir}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = schema_contents(f"{schema_dir}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def schema_errors(objects: Iterable[dict[str, Any]], version: str | None = None) -> list[str]:
    """One line per object that does not match its Kubernetes schema (strict: no unknown fields)."""
    version = version or kubernetes_version()
    errors = []
    for obj in objects:
        validator = _validator(str(obj.get("apiVersion")), str(obj.get("kind")), version)
        if validator is None:
            errors.append(f"{ref(obj)}: schema: no schema for {obj.get('apiVersion')} "
                          f"{obj.get('kind')} in Kubernetes {version}")
            continue
        for error in validator.iter_errors(obj):
            where = ".".join(str(p) for p in error.absolute_path) or "(object)"
            errors.append(f"{ref(obj)}: schema: {where}: {error.message}")
    return errors


# --- policy ------------------------------------------------------------------------------

def ref(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def _labels(meta: dict[str, Any] | None) -> dict[str, str]:
    return (meta or {}).get("labels") or {}


def _is_portico(obj: dict[str, Any]) -> bool:
    return _labels(obj.get("metadata")).get(PART_OF) == "portico"


def _container_security(where: str, container: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    sc = container.get("securityContext") or {}
    pod_sc = pod.get("securityContext") or {}
    out = []

    def effective(key: str) -> Any:
        return sc.get(key, pod_sc.get(key))

    if effective("runAsNonRoot") is not True:
        out.append(f"{where}: runAsNonRoot is not true")
    if effective("runAsUser") == 0:
        out.append(f"{where}: runs as uid 0")
    if sc.get("readOnlyRootFilesystem") is not True:
        out.append(f"{where}: readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        out.append(f"{where}: allowPrivilegeEscalation is not false")
    if sc.get("privileged"):
        out.append(f"{where}: privileged")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        out.append(f"{where}: capabilities do not drop ALL")
    if caps.get("add"):
        out.append(f"{where}: adds capabilities {caps['add']}")
    if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
        out.append(f"{where}: seccompProfile is not RuntimeDefault")
    return out


def _container_resources(where: str, container: dict[str, Any]) -> list[str]:
    resources = container.get("resources") or {}
    out = []
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if not (resources.get(kind) or {}).get(resource):
                out.append(f"{where}: no {resource} {kind[:-1] if kind == 'limits' else 'request'}")
    return out


def _env_secrets(where: str, container: dict[str, Any]) -> list[str]:
    out = []
    for var in container.get("env") or []:
        if "value" not in var:
            continue
        out += _literal_secret(f"{where}: env {var.get('name')}", str(var.get("name")),
                               str(var.get("value")))
    return out


def _literal_secret(where: str, name: str, value: str) -> list[str]:
    if SECRET_NAME.search(name.upper()) and not NOT_SECRET_SUFFIX.search(name.upper()) and value:
        return [f"{where} holds a literal secret value (use a secretKeyRef)"]
    if URL_CREDENTIALS.search(value):
        return [f"{where} holds credentials in a URL (use a secretKeyRef)"]
    return []


def _missing_secrets(where: str, service: str | None, container: dict[str, Any]) -> list[str]:
    """The keys ``service`` needs that ``container`` does not get from the Secret."""
    given = {var.get("name") for var in container.get("env") or []
             if ((var.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
             == SECRET_OBJECT}
    return [f"{where}: {name} is not set from the Secret {SECRET_OBJECT}"
            for name in SERVICE_SECRETS.get(service or "", ()) if name not in given]


def _ingress_violations(ingress: dict[str, Any]) -> list[str]:
    """Each path of ``ingress`` that would route an internal endpoint to the public."""
    out = []
    for rule in (ingress.get("spec") or {}).get("rules") or []:
        for path in ((rule.get("http") or {}).get("paths")) or []:
            value = str(path.get("path") or "/")
            kind = path.get("pathType", "Prefix")
            for internal in INTERNAL_PATHS:
                if (value == internal if kind == "Exact"
                        else internal == value.rstrip("/") or internal.startswith(
                            value.rstrip("/") + "/")):
                    out.append(f"{ref(ingress)}: path {value} ({kind}) routes {internal} "
                               f"to the public")
    return out


def _pod_violations(obj: dict[str, Any], template: dict[str, Any], pinned_images: bool) -> list[str]:
    pod = template.get("spec") or {}
    out = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            out.append(f"{ref(obj)}: {flag} is set")
    if _is_portico(obj) and _labels(template.get("metadata")).get(PART_OF) != "portico":
        out.append(f"{ref(obj)}: pod template lacks the label {PART_OF}=portico")
    is_web = _labels(template.get("metadata")).get(COMPONENT) == "web" and _is_portico(obj)
    containers = [(c, False) for c in pod.get("initContainers") or []]
    containers += [(c, True) for c in pod.get("containers") or []]
    if not pod.get("containers"):
        out.append(f"{ref(obj)}: no containers")
    for container, is_main in containers:
        where = f"{ref(obj)} container {container.get('name')}"
        out += _container_resources(where, container)
        out += _container_security(where, container, pod)
        out += _env_secrets(where, container)
        if is_main and _is_portico(obj):
            out += _missing_secrets(where, _labels(template.get("metadata")).get(NAME),
                                    container)
        image = str(container.get("image", ""))
        if pinned_images and ("@" not in image and (":" not in image.rsplit("/", 1)[-1]
                                                    or image.endswith(":latest"))):
            out.append(f"{where}: image {image!r} is not pinned to a tag or digest")
        if is_main and obj.get("kind") in LONG_RUNNING:
            for probe in ("readinessProbe", "livenessProbe"):
                if not container.get(probe):
                    out.append(f"{where}: no {probe}")
            if is_web and not container.get("startupProbe"):
                out.append(f"{where}: no startupProbe")
    return out


def _selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = (selector or {}).get("matchLabels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def _is_default_deny(policy: dict[str, Any]) -> bool:
    spec = policy.get("spec") or {}
    selects_all = not (spec.get("podSelector") or {})
    types = set(spec.get("policyTypes") or [])
    return (selects_all and {"Ingress", "Egress"} <= types
            and not spec.get("ingress") and not spec.get("egress"))


def check_policy(objects: list[dict[str, Any]], *, min_replicas: int = 1,
                 pinned_images: bool = False) -> list[str]:
    """Every violation of Portico's deployment policy in ``objects`` (see RULES)."""
    out: list[str] = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(obj.get("kind", ""), []).append(obj)
        for template in pod_templates(obj):
            out += _pod_violations(obj, template, pinned_images)
        if not _labels(obj.get("metadata")).get(COMPONENT):
            out.append(f"{ref(obj)}: no {COMPONENT} label")
        if obj.get("kind") == "Secret":
            out.append(f"{ref(obj)}: a Secret is in the manifests (create it out of band)")
        if obj.get("kind") == "Ingress":
            out += _ingress_violations(obj)
        if obj.get("kind") == "ConfigMap":
            for key, value in (obj.get("data") or {}).items():
                out += _literal_secret(f"{ref(obj)}: key {key}", key, str(value))

    if not any(_is_default_deny(p) for p in by_kind.get("NetworkPolicy", [])):
        out.append("no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)")

    hpas = {((h.get("spec") or {}).get("scaleTargetRef") or {}).get("name"): h
            for h in by_kind.get("HorizontalPodAutoscaler", [])}
    pdbs = by_kind.get("PodDisruptionBudget", [])
    for deployment in by_kind.get("Deployment", []):
        if not _is_portico(deployment):
            continue
        name = deployment["metadata"]["name"]
        template_labels = _labels(deployment["spec"]["template"].get("metadata"))
        hpa = hpas.get(name)
        if template_labels.get(COMPONENT) == "web":
            if hpa is None:
                out.append(f"{ref(deployment)}: no HorizontalPodAutoscaler")
            if not any(_selector_matches(p["spec"].get("selector"), template_labels) for p in pdbs):
                out.append(f"{ref(deployment)}: no PodDisruptionBudget")
        if hpa is not None:
            replicas = hpa["spec"].get("minReplicas", 1)
            if hpa["spec"].get("maxReplicas", 0) < replicas:
                out.append(f"{ref(hpa)}: maxReplicas is below minReplicas")
        else:
            replicas = deployment["spec"].get("replicas", 1)
        if replicas < min_replicas:
            out.append(f"{ref(deployment)}: {replicas} replica(s), at least {min_replicas} required")
    return out


# --- command line ------------------------------------------------------------------------

def check_target(target: Target, version: str) -> tuple[int, list[str]]:
    """(number of objects, problems) of one target."""
    objects = render(target)
    problems = schema_errors(objects, version)
    problems += check_policy(copy.deepcopy(objects), min_replicas=target.min_replicas,
                             pinned_images=target.pinned_images)
    return len(objects), problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render, schema-check and policy-check deploy/k8s.")
    parser.add_argument("--list", action="store_true", help="print the policy rules and exit")
    args = parser.parse_args(argv)
    if args.list:
        print(RULES)
        return 0
    version = kubernetes_version()
    have_kubectl = kubectl_path() is not None
    print(f"k8s-check: Kubernetes {version} schemas; "
          + ("rendering with kubectl kustomize" if have_kubectl
             else "kubectl not found: overlays NOT rendered, base assembled from its files"))
    failed = False
    for target in TARGETS:
        if not have_kubectl and target.path != BASE:
            print(f"  {target.name}: skipped (needs kubectl)")
            continue
        try:
            count, problems = check_target(target, version)
        except RenderError as exc:
            print(f"  {target.name}: FAILED to render: {exc}")
            failed = True
            continue
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        print(f"  {target.name}: {count} objects, {status}")
        for problem in problems:
            print(f"    - {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
