"""Rules no scanner can know: they tie a manifest or workflow value to what the server does.

    python -m tools.manifest_rules RENDERED.yaml...   # each rendered overlay, then delivery.yml

`nox -s manifests` (tools/manifests.py) runs them on the rendered overlays after the schema check;
checkov and trivy own the rest (image pins, resources, security contexts). A rule returns one
line per problem naming the object, the value found and the value wanted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from tools.project import ROOT, names

Doc = dict[str, Any]
# The server's routes: /healthz answers while it runs, /readyz only with the model loaded and
# until the drain starts, so traffic stops before the server does.
PROBE_PATHS = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
PRESTOP_SLEEP_MAX = 30


def named(docs: list[Doc], kind: str, name: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]


def check_probes(deployment: Doc, docs: list[Doc]) -> list[str]:
    serve = deployment["spec"]["template"]["spec"]["containers"][0]
    found = {probe: serve.get(probe, {}).get("httpGet", {}).get("path") for probe in PROBE_PATHS}
    return [
        f"{probe} path is {found[probe]!r}, want {path!r}"
        for probe, path in PROBE_PATHS.items()
        if found[probe] != path
    ]


def check_shutdown(deployment: Doc, docs: list[Doc]) -> list[str]:
    """The preStop pause, then the server's drain, end before the grace period kills the pod."""
    pod = deployment["spec"]["template"]["spec"]
    serve = pod["containers"][0]
    settings: dict[str, str] = {}
    for source in serve.get("envFrom", []):
        for config in named(docs, "ConfigMap", source.get("configMapRef", {}).get("name")):
            settings.update(config.get("data", {}))
    drain = int(settings.get("DRAIN_SECONDS", 10))
    pause = serve.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    problems = []
    if not 0 < pause <= PRESTOP_SLEEP_MAX:
        problems.append(f"preStop sleep is {pause}s, want 1..{PRESTOP_SLEEP_MAX}s")
    if grace <= pause + drain:
        problems.append(
            f"terminationGracePeriodSeconds {grace} must exceed preStop {pause}s + "
            f"DRAIN_SECONDS {drain}s"
        )
    return problems


def check_rollout(deployment: Doc, docs: list[Doc]) -> list[str]:
    """One autoscaler owns the replica count; a rollout never drops a ready pod."""
    spec, name = deployment["spec"], deployment["metadata"]["name"]
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    count = sum(hpa["spec"]["scaleTargetRef"] == target for hpa in hpas)
    problems = [] if count == 1 else [f"{count} HorizontalPodAutoscalers target it, want 1"]
    if "replicas" in spec:
        problems.append(f"spec.replicas={spec['replicas']} fights the autoscaler")
    strategy = spec.get("strategy", {})
    if strategy.get("rollingUpdate", {}).get("maxUnavailable") != 0:
        problems.append(f"strategy {strategy}, want RollingUpdate with maxUnavailable 0")
    return problems


SERVING_RULES: dict[str, Callable[[Doc, list[Doc]], list[str]]] = {
    "probes hit the server's routes": check_probes,
    "the drain fits the grace period": check_shutdown,
    "the autoscaler owns the replicas": check_rollout,
}


def check_rendered(docs: list[Doc]) -> list[str]:
    """Every serving rule on the serving Deployment of one rendered overlay."""
    where = f"Deployment/{names().deployment}"
    found = named(docs, "Deployment", names().deployment)
    if len(found) != 1:
        return [f"{where}: found {len(found)}, want exactly 1"]
    return [f"{where}: {p}" for rule in SERVING_RULES.values() for p in rule(found[0], docs)]


# A trivy step gates unless it sets exit-code 0 (trivy.yaml's exit-code is 1).
TRIVY = "aquasecurity/trivy-action"
PUSH_COMMANDS = ("docker push", "cosign sign", "cosign attest", "imagetools create")


def pushes(step: Doc) -> bool:
    """Pushes, signs or attests an image."""
    uses, run = step.get("uses", ""), step.get("run", "")
    built = uses.startswith("docker/build-push-action") and step.get("with", {}).get("push")
    return bool(built) or uses.startswith("actions/attest") or any(c in run for c in PUSH_COMMANDS)


def runs_third_party_code(step: Doc) -> bool:
    """Training (nox), Dockerfile builds (their RUN steps install packages) and scanners."""
    uses = step.get("uses", "")
    return uses.startswith((TRIVY, "docker/build-push-action")) or "nox " in step.get("run", "")


def is_gate(step: Doc) -> bool:
    exit_code = str(step.get("with", {}).get("exit-code", "1"))
    return step.get("uses", "").startswith(TRIVY) and exit_code != "0"


def needed(jobs: dict[str, Doc], name: str) -> set[str]:
    """Every job `name` waits for, directly or through others."""
    direct = jobs[name].get("needs", [])
    found = {direct} if isinstance(direct, str) else set(direct)
    return found.union(*(needed(jobs, job) for job in found))


def check_delivery_order(workflow: Doc) -> list[str]:
    """Nothing is pushed, signed or attested before the scan gate, and no job both runs
    third-party code and holds a write scope (see delivery.yml's header)."""
    jobs: dict[str, Doc] = workflow["jobs"]
    gates = {name for name, job in jobs.items() if any(map(is_gate, job.get("steps", [])))}
    problems = [] if gates else ["delivery.yml: no job runs a trivy gate"]
    for name, job in jobs.items():
        steps = job.get("steps", [])
        writes = {k for k, v in job.get("permissions", {}).items() if v == "write"}
        writes &= {"packages", "id-token", "attestations"}
        # A job that calls a workflow (train.yml) runs whatever that workflow runs.
        if writes and ("uses" in job or any(map(runs_third_party_code, steps))):
            problems.append(
                f"delivery.yml job {name}: runs third-party code and holds "
                f"{sorted(writes)} write; split it"
            )
        if any(map(pushes, steps)) and (name in gates or not gates <= needed(jobs, name)):
            problems.append(
                f"delivery.yml job {name}: pushes, signs or attests without waiting for the "
                f"scan gate in {sorted(gates)}"
            )
    return problems


def main(paths: Sequence[str]) -> int:
    """The serving rules on each rendered overlay in `paths`, then the delivery rule."""
    found = {
        f"{path}: {', '.join(SERVING_RULES)}": check_rendered(
            [doc for doc in yaml.safe_load_all(Path(path).read_text()) if doc]
        )
        for path in paths
    }
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "delivery.yml").read_text())
    found["delivery.yml pushes only after the scan gate"] = check_delivery_order(workflow)
    for what, problems in found.items():
        for problem in problems:
            print(f"FAIL {problem}", file=sys.stderr)
        if not problems:
            print(f"ok: {what}")
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
