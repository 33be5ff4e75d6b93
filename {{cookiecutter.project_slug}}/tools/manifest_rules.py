"""Project rules for rendered manifests and workflows that generic scanners don't know.

    python -m tools.manifest_rules rendered OVERLAY.yaml...  # RENDERED_RULES, PROJECT_RULES
    python -m tools.manifest_rules project              # PROJECT_RULES only
    python -m tools.manifest_rules kubernetes-version   # of the pinned kind node image, e.g. 1.37.0

`nox -s manifests` (tools/manifests.py) renders the overlays and runs these.

One small function per rule, in tables (the pattern of the template's hooks/validation.py); each
returns one line per problem naming the resource, the value found and the value wanted.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from tools.project import ROOT, names

PART_OF = "app.kubernetes.io/part-of"
WORKLOADS = {"Deployment", "Job", "CronJob", "StatefulSet", "DaemonSet", "Pod"}
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
PRESTOP_SLEEP_MAX = 30
Doc = dict[str, Any]
Rule = Callable[[list[Doc]], list[str]]


def load(paths: Iterable[Path]) -> list[Doc]:
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a matchLabels selector picks pods with `labels` (matchExpressions unused here)."""
    wanted = selector.get("matchLabels", {})
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def pod_template(doc: Doc) -> Doc:
    """The pod (metadata and spec) a workload runs; a Pod is its own template."""
    spec = doc["spec"]
    if "jobTemplate" in spec:
        return dict(spec["jobTemplate"]["spec"]["template"])
    return dict(spec["template"]) if "template" in spec else doc


def containers(doc: Doc) -> list[Doc]:
    pod = pod_template(doc)["spec"]
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def workloads(docs: list[Doc]) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] in WORKLOADS]


# ---- rules for every workload ---------------------------------------------------------------


def check_pod_labels(docs: list[Doc]) -> list[str]:
    """Every pod carries the project's part-of label, so `kubectl logs -l` finds all of them."""
    wanted = names().deployment
    problems = []
    for doc in workloads(docs):
        found = pod_template(doc).get("metadata", {}).get("labels", {}).get(PART_OF)
        if found != wanted:
            problems.append(
                f"{doc['kind']}/{doc['metadata']['name']}: pod template label {PART_OF}="
                f"{found!r}, want {wanted!r} (kustomize labels includeTemplates)"
            )
    return problems


def check_image_pins(docs: list[Doc]) -> list[str]:
    """Every image has an explicit tag or digest, never `latest`."""
    problems = []
    for doc in workloads(docs):
        for c in containers(doc):
            image = c["image"]
            name = image.split("@")[0].rsplit("/", 1)[-1]
            if "@sha256:" not in image and (":" not in name or name.endswith(":latest")):
                problems.append(
                    f"{doc['kind']}/{doc['metadata']['name']} container {c['name']}: "
                    f"image {image!r} "
                    "has no explicit tag or digest (or is :latest); pin a tag or a digest"
                )
    return problems


# ---- rules for an overlay: the serving Deployment and what guards it ------------------------


def serving(docs: list[Doc]) -> Doc | None:
    found = find(docs, "Deployment", names().deployment)
    return found[0] if len(found) == 1 else None


def where() -> str:
    return f"Deployment/{names().deployment}"


def serving_container(deployment: Doc) -> Doc:
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


def pod_labels(deployment: Doc) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def check_one_serving_deployment(docs: list[Doc]) -> list[str]:
    count = len(find(docs, "Deployment", names().deployment))
    return [] if count == 1 else [f"{where()}: found {count}, want exactly 1"]


def check_rollout(docs: list[Doc]) -> list[str]:
    """The autoscaler owns the replica count; a rollout never drops a ready pod."""
    if (deployment := serving(docs)) is None:
        return []
    spec, problems = deployment["spec"], []
    if "replicas" in spec:
        problems.append(f"{where()}: spec.replicas={spec['replicas']} fights the autoscaler")
    strategy = spec.get("strategy", {})
    unavailable = strategy.get("rollingUpdate", {}).get("maxUnavailable")
    if strategy.get("type") != "RollingUpdate" or unavailable != 0:
        problems.append(
            f"{where()}: strategy {strategy} must be RollingUpdate with maxUnavailable 0"
        )
    return problems


def check_probes(docs: list[Doc]) -> list[str]:
    if (deployment := serving(docs)) is None:
        return []
    serve, problems = serving_container(deployment), []
    for probe, path in (
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ):
        got = serve.get(probe, {}).get("httpGet", {}).get("path")
        if got != path:
            problems.append(f"{where()}: {probe} path is {got!r}, want {path!r}")
    return problems


def check_shutdown(docs: list[Doc]) -> list[str]:
    """The preStop pause and the server's drain fit in the grace period."""
    if (deployment := serving(docs)) is None:
        return []
    serve, pod = serving_container(deployment), deployment["spec"]["template"]["spec"]
    settings: dict[str, str] = {}
    for source in serve.get("envFrom", []):
        for cm in find(docs, "ConfigMap", source.get("configMapRef", {}).get("name")):
            settings.update(cm.get("data", {}))
    drain = int(settings.get("DRAIN_SECONDS", 10))
    pause = serve.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    problems = []
    if not 0 < pause <= PRESTOP_SLEEP_MAX:
        problems.append(f"{where()}: preStop sleep is {pause}s, want 1..{PRESTOP_SLEEP_MAX}s")
    if grace <= pause + drain:
        problems.append(
            f"{where()}: terminationGracePeriodSeconds {grace} must exceed preStop {pause}s + "
            f"DRAIN_SECONDS {drain}s"
        )
    return problems


def check_spread(docs: list[Doc]) -> list[str]:
    if (deployment := serving(docs)) is None:
        return []
    if deployment["spec"]["template"]["spec"].get("topologySpreadConstraints"):
        return []
    return [f"{where()}: no topologySpreadConstraints; spread the pods across nodes"]


def check_resources(docs: list[Doc]) -> list[str]:
    if (deployment := serving(docs)) is None:
        return []
    resources = serving_container(deployment).get("resources", {})
    return [
        f"{where()}: resources.{key} needs cpu and memory"
        for key in ("requests", "limits")
        if not {"cpu", "memory"} <= set(resources.get(key, {}))
    ]


def check_disruption_budget(docs: list[Doc]) -> list[str]:
    if (deployment := serving(docs)) is None:
        return []
    labels = pod_labels(deployment)
    if any(selects(p["spec"]["selector"], labels) for p in find(docs, "PodDisruptionBudget")):
        return []
    return [f"{where()}: no PodDisruptionBudget selects its pods {labels}"]


def check_autoscaler(docs: list[Doc]) -> list[str]:
    """Exactly one HorizontalPodAutoscaler targets the Deployment, with sane bounds."""
    if serving(docs) is None:
        return []
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": names().deployment}
    hpas = [
        h for h in find(docs, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"] == target
    ]
    if len(hpas) != 1:
        return [f"{where()}: {len(hpas)} HorizontalPodAutoscalers target it, want 1"]
    low, high = hpas[0]["spec"].get("minReplicas", 1), hpas[0]["spec"]["maxReplicas"]
    if 1 <= low <= high:
        return []
    return [
        f"HorizontalPodAutoscaler/{names().deployment}: bounds {low}..{high}, want 1 <= min <= max"
    ]


def check_network_policy(docs: list[Doc]) -> list[str]:
    """A NetworkPolicy lets traffic in to the serving port only."""
    if (deployment := serving(docs)) is None:
        return []
    port, labels = serving_container(deployment)["ports"][0], pod_labels(deployment)
    policies = [n for n in find(docs, "NetworkPolicy") if selects(n["spec"]["podSelector"], labels)]
    allowed = [
        p.get("port")
        for n in policies
        for rule in n["spec"].get("ingress", [])
        for p in rule.get("ports", [])
    ]
    if allowed and all(p in (port["name"], port["containerPort"]) for p in allowed):
        return []
    wanted = port["name"]
    return [f"{where()}: NetworkPolicy ingress ports {allowed}, want only serving port {wanted}"]


def check_pod_security_version(docs: list[Doc]) -> list[str]:
    """Pod Security admission is pinned to the kind node's minor, never `latest`."""
    major, minor, _ = kubernetes_version().split(".")
    wanted = f"v{major}.{minor}"
    return [
        f"Namespace/{doc['metadata']['name']}: pod-security enforce-version {found!r}, "
        f"want {wanted!r} (the kind node image's minor)"
        for doc in find(docs, "Namespace")
        if (found := doc["metadata"].get("labels", {}).get(ENFORCE_VERSION)) != wanted
    ]


def check_namespace(docs: list[Doc]) -> list[str]:
    """Every namespaced object lands in the project's namespace."""
    wanted = names().namespace
    return [
        f"{doc['kind']}/{doc['metadata']['name']}: namespace {found!r}, want {wanted!r}"
        for doc in docs
        if doc["kind"] != "Namespace" and (found := doc["metadata"].get("namespace")) != wanted
    ]


WORKLOAD_RULES: dict[str, Rule] = {
    "image pins": check_image_pins,
    "pod labels": check_pod_labels,
    "namespace": check_namespace,
}
RENDERED_RULES: dict[str, Rule] = {
    **WORKLOAD_RULES,
    "one serving Deployment": check_one_serving_deployment,
    "rollout": check_rollout,
    "probes": check_probes,
    "shutdown": check_shutdown,
    "spread": check_spread,
    "resources": check_resources,
    "disruption budget": check_disruption_budget,
    "autoscaler": check_autoscaler,
    "network policy": check_network_policy,
    "pod security": check_pod_security_version,
}


# ---- rules for the project's files: names agree, delivery order ----------------------------


def read_yaml(relative: str) -> Any:
    return yaml.safe_load((ROOT / relative).read_text())


def workflow_env(name: str = "delivery.yml") -> dict[str, str]:
    return dict(read_yaml(f".github/workflows/{name}")["env"])


def name_facts() -> dict[str, dict[str, str]]:
    """Where each name is written outside pyproject.toml's [tool.mlops], and what it says."""
    the = names()
    env = workflow_env()
    base = read_yaml("k8s/base/deployment.yaml")
    production = read_yaml("k8s/overlays/production/kustomization.yaml")
    kind = read_yaml("k8s/overlays/kind/kustomization.yaml")
    load = read_yaml("k8s/hpa-load/kustomization.yaml")
    nodes = read_yaml("k8s/kind-config.yaml")["nodes"]
    return {
        "image name": {
            "[tool.mlops] image": the.image,
            "k8s/base deployment": base["spec"]["template"]["spec"]["containers"][0]["image"],
            "production images[0].name": production["images"][0]["name"],
            "kind images[0].name": kind["images"][0]["name"],
            "delivery.yml IMAGE_NAME": env["IMAGE_NAME"],
        },
        "registry": {
            "[tool.mlops] registry": the.registry,
            "production images[0].newName": production["images"][0]["newName"].rsplit("/", 1)[0],
            "delivery.yml REGISTRY": env["REGISTRY"],
        },
        "namespace": {
            "[tool.mlops] namespace": the.namespace,
            "kind namespace": kind["namespace"],
            "production namespace": production["namespace"],
            "hpa-load namespace": load["namespace"],
            "delivery.yml NAMESPACE": env["NAMESPACE"],
        },
        "deployment": {
            "[tool.mlops] deployment": the.deployment,
            "k8s/base deployment": base["metadata"]["name"],
            "delivery.yml DEPLOYMENT": env["DEPLOYMENT"],
            "delivery.yml CLUSTER": env["CLUSTER"],
            "delivery.yml PART_OF": env["PART_OF"],
        },
        "kind node image": {
            "delivery.yml KIND_NODE_IMAGE": env["KIND_NODE_IMAGE"],
            **{f"kind-config.yaml nodes[{i}]": node["image"] for i, node in enumerate(nodes)},
        },
    }


def check_names_agree() -> list[str]:
    """Image, registry, namespace, deployment and kind node image agree with the one home."""
    problems = []
    for what, where_written in name_facts().items():
        if len(set(where_written.values())) != 1:
            listing = ", ".join(f"{k}={v!r}" for k, v in where_written.items())
            problems.append(f"{what} differs: {listing}; make them one value")
    return problems


def check_kubectl_version() -> list[str]:
    """The kubectl helm/kind-action installs is the kind node's version."""
    wanted = f"v{kubernetes_version()}"
    found = workflow_env().get("KUBECTL_VERSION")
    if found != wanted:
        return [f"delivery.yml KUBECTL_VERSION is {found!r}, want the kind node's {wanted!r}"]
    return []


# Scopes that let a job publish or vouch for an image.
WRITE_SCOPES = {"packages", "id-token", "attestations"}
TRIVY = "aquasecurity/trivy-action"
PUSH_COMMANDS = ("docker push", "cosign sign", "cosign attest", "imagetools create")


def runs_third_party_code(step: Doc) -> bool:
    """Training, Dockerfile builds (their RUN steps install packages) and scanners."""
    uses, run = step.get("uses", ""), step.get("run", "")
    return uses.startswith((TRIVY, "docker/build-push-action")) or "nox " in run


def pushes(step: Doc) -> bool:
    uses, run = step.get("uses", ""), step.get("run", "")
    pushed = uses.startswith("docker/build-push-action") and step.get("with", {}).get("push")
    attests = uses.startswith("actions/attest")
    return bool(pushed) or attests or any(command in run for command in PUSH_COMMANDS)


def is_gate(step: Doc) -> bool:
    """A trivy step that fails the job on findings (trivy.yaml's exit-code unless set to 0)."""
    settings = step.get("with", {})
    return step.get("uses", "").startswith(TRIVY) and str(settings.get("exit-code", "1")) != "0"


def needed(jobs: dict[str, Doc], name: str) -> set[str]:
    """Every job `name` waits for, directly or through others."""
    direct = jobs[name].get("needs", [])
    found = set([direct] if isinstance(direct, str) else direct)
    for job in list(found):
        found |= needed(jobs, job)
    return found


def check_delivery_order(workflow: Doc | None = None) -> list[str]:
    """Nothing is pushed, signed or attested before the scan gate, and no job both runs
    third-party code and holds a write scope (see delivery.yml's header)."""
    jobs: dict[str, Doc] = (workflow or read_yaml(".github/workflows/delivery.yml"))["jobs"]
    gates = {name for name, job in jobs.items() if any(map(is_gate, job.get("steps", [])))}
    problems = [] if gates else ["delivery.yml: no job runs a trivy gate"]
    for name, job in jobs.items():
        steps = job.get("steps", [])
        scopes = {k for k, v in job.get("permissions", {}).items() if v == "write"}
        if scopes & WRITE_SCOPES and any(map(runs_third_party_code, steps)):
            problems.append(
                f"delivery.yml job {name}: runs third-party code and holds "
                f"{sorted(scopes & WRITE_SCOPES)} write; split it"
            )
        if any(map(pushes, steps)) and (name in gates or not gates <= needed(jobs, name)):
            problems.append(
                f"delivery.yml job {name}: pushes, signs or attests without waiting for the "
                f"scan gate in {sorted(gates)}"
            )
    return problems


PROJECT_RULES: dict[str, Callable[[], list[str]]] = {
    "image name, registry, kind node image and kubectl agree": lambda: [
        *check_names_agree(),
        *check_kubectl_version(),
    ],
    "delivery pushes only after the scan gate": check_delivery_order,
}


def kubernetes_version() -> str:
    """The Kubernetes version of the kind node image, e.g. '1.37.0' for kindest/node:v1.37.0@..."""
    image = read_yaml("k8s/kind-config.yaml")["nodes"][0]["image"]
    match = re.search(r":v(\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}$", image)
    if not match:
        raise SystemExit(
            f"k8s/kind-config.yaml: node image {image!r} is not kindest/node:vX.Y.Z@sha256:<digest>"
        )
    return match[1]


def problems(rules: dict[str, Rule], docs: list[Doc]) -> list[str]:
    return [problem for rule in rules.values() for problem in rule(docs)]


def report(found: list[str], what: str) -> int:
    for problem in found:
        print(f"FAIL {problem}", file=sys.stderr)
    if not found:
        print(f"ok: {what}")
    return 1 if found else 0


def run_rules(rendered: Sequence[str], workload_only: Sequence[str]) -> int:
    """Every rule on the rendered overlays and the project, WORKLOAD_RULES on `workload_only`."""
    failed = 0
    for path in rendered:
        found = problems(RENDERED_RULES, load([Path(path)]))
        failed |= report(found, f"{path} serving rules, pod labels, pod security")
    if workload_only:
        found = [p for path in workload_only for p in problems(WORKLOAD_RULES, load([Path(path)]))]
        failed |= report(found, f"{', '.join(workload_only)} image pins, pod labels and namespace")
    for what, rule in PROJECT_RULES.items():
        failed |= report(rule(), what)
    return failed


def main(argv: Sequence[str]) -> int:
    command, *args = argv or ["help"]
    if command == "rendered" and args:
        return run_rules(args, [])
    if command == "project":
        return run_rules([], [])
    if command == "kubernetes-version":
        print(kubernetes_version())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
