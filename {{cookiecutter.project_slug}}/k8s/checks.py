"""Project rules for rendered manifests that generic scanners don't know (`nox -s manifests`).

    python k8s/checks.py rendered OVERLAY.yaml...   # serving rules on `kubectl kustomize` output
    python k8s/checks.py workloads RENDERED.yaml... # image pins and pod labels only (hpa-load)
    python k8s/checks.py consistency                # names agree across noxfile, k8s/, workflows
    python k8s/checks.py delivery                   # scan before push, least-privilege jobs
    python k8s/checks.py kubernetes-version         # of the pinned kind node image, e.g. 1.37.0

Each problem is one line naming the resource, the value found and the value wanted.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = "{{ cookiecutter.project_slug }}"
PART_OF = "app.kubernetes.io/part-of"
WORKLOADS = {"Deployment", "Job", "CronJob", "StatefulSet", "DaemonSet", "Pod"}
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
PRESTOP_SLEEP_MAX = 30
Doc = dict[str, Any]


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


def label_problems(docs: list[Doc]) -> list[str]:
    """Every pod carries the project's part-of label, so `kubectl logs -l` finds all of them."""
    problems = []
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        labels = pod_template(doc).get("metadata", {}).get("labels", {})
        if labels.get(PART_OF) != DEPLOYMENT:
            problems.append(
                f"{doc['kind']}/{doc['metadata']['name']}: pod template label {PART_OF}="
                f"{labels.get(PART_OF)!r}, want {DEPLOYMENT!r} (kustomize labels includeTemplates)"
            )
    return problems


def workload_problems(docs: list[Doc]) -> list[str]:
    """Rules for every workload: pinned images and the project's pod labels."""
    return [*image_problems(docs), *label_problems(docs)]


def namespace_problems(docs: list[Doc]) -> list[str]:
    """Pod Security admission is pinned to the kind node's minor, never `latest`."""
    major, minor, _ = kubernetes_version().split(".")
    wanted = f"v{major}.{minor}"
    return [
        f"Namespace/{doc['metadata']['name']}: pod-security enforce-version {found!r}, "
        f"want {wanted!r} (the kind node image's minor)"
        for doc in find(docs, "Namespace")
        if (found := doc["metadata"].get("labels", {}).get(ENFORCE_VERSION)) != wanted
    ]


def image_problems(docs: list[Doc]) -> list[str]:
    """Every image has an explicit tag or digest, never `latest`."""
    problems = []
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
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


def serving_problems(docs: list[Doc]) -> list[str]:
    """The serving Deployment's rollout, probes and shutdown, and the objects that guard it."""
    found = find(docs, "Deployment", DEPLOYMENT)
    if len(found) != 1:
        return [f"Deployment/{DEPLOYMENT}: found {len(found)}, want exactly 1"]
    deployment = found[0]
    spec, where = deployment["spec"], f"Deployment/{DEPLOYMENT}"
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    problems = []
    if "replicas" in spec:
        problems.append(
            f"{where}: spec.replicas={spec['replicas']} fights the autoscaler; remove it"
        )
    strategy = spec.get("strategy", {})
    unavailable = strategy.get("rollingUpdate", {}).get("maxUnavailable")
    if strategy.get("type") != "RollingUpdate" or unavailable != 0:
        problems.append(f"{where}: strategy {strategy} must be RollingUpdate with maxUnavailable 0")
    serve = pod["containers"][0]
    for probe, path in (
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ):
        got = serve.get(probe, {}).get("httpGet", {}).get("path")
        if got != path:
            problems.append(f"{where}: {probe} path is {got!r}, want {path!r}")
    settings = {}
    for source in serve.get("envFrom", []):
        for cm in find(docs, "ConfigMap", source.get("configMapRef", {}).get("name")):
            settings.update(cm.get("data", {}))
    drain = int(settings.get("DRAIN_SECONDS", 10))
    pause = serve.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if not 0 < pause <= PRESTOP_SLEEP_MAX:
        problems.append(f"{where}: preStop sleep is {pause}s, want 1..{PRESTOP_SLEEP_MAX}s")
    if grace <= pause + drain:
        problems.append(
            f"{where}: terminationGracePeriodSeconds {grace} must exceed preStop {pause}s + "
            f"DRAIN_SECONDS {drain}s"
        )
    if not pod.get("topologySpreadConstraints"):
        problems.append(f"{where}: no topologySpreadConstraints; spread the pods across nodes")
    for key in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(serve.get("resources", {}).get(key, {})):
            problems.append(f"{where}: resources.{key} needs cpu and memory")
    pdbs = [p for p in find(docs, "PodDisruptionBudget") if selects(p["spec"]["selector"], labels)]
    if not pdbs:
        problems.append(f"{where}: no PodDisruptionBudget selects its pods {labels}")
    hpas = [
        h
        for h in find(docs, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]
        == {"apiVersion": "apps/v1", "kind": "Deployment", "name": DEPLOYMENT}
    ]
    if len(hpas) != 1:
        problems.append(f"{where}: {len(hpas)} HorizontalPodAutoscalers target it, want 1")
    else:
        low, high = hpas[0]["spec"].get("minReplicas", 1), hpas[0]["spec"]["maxReplicas"]
        if not 1 <= low <= high:
            problems.append(
                f"HorizontalPodAutoscaler/{DEPLOYMENT}: bounds {low}..{high}, want 1 <= min <= max"
            )
    port = serve["ports"][0]
    policies = [n for n in find(docs, "NetworkPolicy") if selects(n["spec"]["podSelector"], labels)]
    allowed = [
        p.get("port")
        for n in policies
        for rule in n["spec"].get("ingress", [])
        for p in rule.get("ports", [])
    ]
    if (
        not policies
        or any(p not in (port["name"], port["containerPort"]) for p in allowed)
        or not allowed
    ):
        problems.append(
            f"{where}: NetworkPolicy ingress ports {allowed}, "
            f"want only the serving port {port['name']}"
        )
    return problems


def workflow_env(name: str) -> dict[str, str]:
    return dict(yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())["env"])


def consistency_problems() -> list[str]:
    """Image name, registry and kind node image agree everywhere they are written down."""
    noxfile = (ROOT / "noxfile.py").read_text()
    image = re.search(r'^IMAGE = "([^"]+)"', noxfile, re.M)
    registry = re.search(r'^DEFAULT_REGISTRY = "([^"]+)"', noxfile, re.M)
    if not image or not registry:
        return ["noxfile.py: IMAGE or REGISTRY default not found"]
    facts: dict[str, dict[str, str]] = {"image name": {}, "registry": {}, "kind node image": {}}
    facts["image name"]["noxfile.py IMAGE"] = image[1]
    facts["registry"]["noxfile.py REGISTRY"] = registry[1]
    base = load([ROOT / "k8s" / "base" / "deployment.yaml"])[0]
    facts["image name"]["k8s/base deployment"] = base["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    production = yaml.safe_load(
        (ROOT / "k8s" / "overlays" / "production" / "kustomization.yaml").read_text()
    )
    entry = production["images"][0]
    facts["image name"]["production images[].name"] = entry["name"]
    facts["registry"]["production images[].newName"] = entry["newName"].rsplit("/", 1)[0]
    kind = yaml.safe_load((ROOT / "k8s" / "overlays" / "kind" / "kustomization.yaml").read_text())
    facts["image name"]["kind images[0].name"] = kind["images"][0]["name"]
    for workflow in ("delivery.yml",):
        env = workflow_env(workflow)
        facts["image name"][f"{workflow} IMAGE_NAME"] = env["IMAGE_NAME"]
        facts["registry"][f"{workflow} REGISTRY"] = env["REGISTRY"]
        facts["kind node image"][f"{workflow} KIND_NODE_IMAGE"] = env["KIND_NODE_IMAGE"]
    nodes = yaml.safe_load((ROOT / "k8s" / "kind-config.yaml").read_text())["nodes"]
    for i, node in enumerate(nodes):
        facts["kind node image"][f"kind-config.yaml nodes[{i}]"] = node["image"]
    problems = []
    for what, where in facts.items():
        if len(set(where.values())) != 1:
            listing = ", ".join(f"{k}={v!r}" for k, v in where.items())
            problems.append(f"{what} differs: {listing}; make them one value")
    return problems


def kubectl_problems() -> list[str]:
    """The kubectl helm/kind-action installs is the kind node's version."""
    wanted = f"v{kubernetes_version()}"
    found = workflow_env("delivery.yml").get("KUBECTL_VERSION")
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


def delivery_problems() -> list[str]:
    """Nothing is pushed, signed or attested before the scan gate, and no job both runs
    third-party code and holds a write scope (see delivery.yml's header)."""
    jobs: dict[str, Doc] = yaml.safe_load(
        (ROOT / ".github" / "workflows" / "delivery.yml").read_text()
    )["jobs"]
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


def kubernetes_version() -> str:
    """The Kubernetes version of the kind node image, e.g. '1.37.0' for kindest/node:v1.37.0@..."""
    image = yaml.safe_load((ROOT / "k8s" / "kind-config.yaml").read_text())["nodes"][0]["image"]
    match = re.search(r":v(\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}$", image)
    if not match:
        raise SystemExit(
            f"k8s/kind-config.yaml: node image {image!r} is not kindest/node:vX.Y.Z@sha256:<digest>"
        )
    return match[1]


def report(problems: list[str], what: str) -> int:
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if not problems:
        print(f"ok: {what}")
    return 1 if problems else 0


def main(argv: Sequence[str]) -> int:
    command, *args = argv or ["help"]
    if command == "rendered" and args:
        failed = 0
        for path in map(Path, args):
            docs = load([path])
            problems = [
                *workload_problems(docs),
                *serving_problems(docs),
                *namespace_problems(docs),
            ]
            failed |= report(problems, f"{path} serving rules, pod labels, pod security")
        return failed
    if command == "workloads" and args:
        problems = [p for path in map(Path, args) for p in workload_problems(load([path]))]
        return report(problems, "image pins and pod labels")
    if command == "consistency":
        problems = [*consistency_problems(), *kubectl_problems()]
        return report(problems, "image name, registry, kind node image and kubectl agree")
    if command == "delivery":
        return report(delivery_problems(), "delivery pushes only after the scan gate")
    if command == "kubernetes-version":
        print(kubernetes_version())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
