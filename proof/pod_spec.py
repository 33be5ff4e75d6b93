"""What a rendered overlay asks of Docker: every workload, Service and volume, as plain data.

`proof/rehearsal.py` runs these plans on a Docker engine. Each field a manifest uses is either
reproduced here, listed in NOT_ENFORCED (it only matters to a scheduler or a network plugin),
or refused with `Unsupported`: the rehearsal never skips what it does not understand.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

# Kinds that are read elsewhere (ConfigMap, PVC, Service, HPA) or that need no container.
PASSIVE_KINDS = {"Namespace", "ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "Service"}
NOT_ENFORCED = {
    "NetworkPolicy": "no network plugin: every container on the network can reach every other",
    "PodDisruptionBudget": "no voluntary evictions happen outside a cluster",
    "HorizontalPodAutoscaler": "replicas run at minReplicas, then at maxReplicas",
}
POD_FIELDS = {
    "containers",
    "securityContext",
    "volumes",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    # Scheduling and API access: nothing to reproduce on one Docker engine.
    "serviceAccountName",
    "automountServiceAccountToken",
    "topologySpreadConstraints",
    "enableServiceLinks",
}
CONTAINER_FIELDS = {
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "env",
    "envFrom",
    "ports",
    "resources",
    "securityContext",
    "startupProbe",
    "readinessProbe",
    "livenessProbe",
    "lifecycle",
    "volumeMounts",
    "workingDir",
}
SECURITY_FIELDS = {
    "runAsNonRoot",
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    "allowPrivilegeEscalation",
    "privileged",
    "readOnlyRootFilesystem",
    "capabilities",
    "seccompProfile",
}
DEPLOYMENT_FIELDS = {
    "replicas",
    "revisionHistoryLimit",
    "selector",
    "strategy",
    "template",
    "minReadySeconds",
    "progressDeadlineSeconds",
}
JOB_FIELDS = {"backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished", "template"}
PROBE_FIELDS = {
    "httpGet",
    "tcpSocket",
    "exec",
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "failureThreshold",
    "successThreshold",
}
QUANTITY = re.compile(r"^(?P<number>[0-9.]+)(?P<unit>[KMGT]i?|m|)$")
UNITS = {
    "": 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}
DEPENDENT_VAR = re.compile(r"\$\((\w+)\)")


class RenderError(RuntimeError):
    """kustomize could not build the overlay."""


def render(overlay: Path) -> list[Doc]:
    """The overlay as the API server would receive it (`kubectl kustomize`)."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise RenderError(f"kubectl kustomize {overlay}: {out.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


class Unsupported(ValueError):
    """A manifest asks for something the rehearsal cannot reproduce on Docker."""


@dataclass(frozen=True)
class Probe:
    """One kubelet probe, with Kubernetes' defaults filled in."""

    kind: str  # startup, readiness or liveness
    action: str  # http, tcp or exec
    port: int = 0
    path: str = "/"
    command: tuple[str, ...] = ()
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    failure_threshold: int = 3
    success_threshold: int = 1


@dataclass(frozen=True)
class Mount:
    """A volume in the container: tmpfs (emptyDir), named volume (PVC) or files (ConfigMap)."""

    target: str
    kind: str
    size: int | None = None
    claim: str = ""
    files: Mapping[str, str] = field(default_factory=dict)
    read_only: bool = False


@dataclass(frozen=True)
class Container:
    """Everything `docker create` needs to run one pod's only container as the manifest says."""

    image: str
    entrypoint: list[str] | None
    command: list[str] | None
    environment: dict[str, str]
    user: str | None
    run_as_non_root: bool
    fs_group: int | None
    read_only: bool
    no_new_privileges: bool
    cap_drop: list[str]
    cap_add: list[str]
    memory: int | None
    nano_cpus: int | None
    ports: dict[str, int]
    mounts: list[Mount]
    probes: dict[str, Probe]
    pre_stop_seconds: float
    grace_seconds: float


@dataclass(frozen=True)
class Workload:
    """A Deployment (replicas from its autoscaler) or a Job (one pod, retried)."""

    kind: str
    name: str
    labels: dict[str, str]
    container: Container
    replicas: int = 1
    max_replicas: int = 1
    backoff_limit: int = 6
    active_deadline: float | None = None

    @property
    def title(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Service:
    """A ClusterIP Service: its name, the pods it selects and port -> target port."""

    name: str
    namespace: str
    selector: dict[str, str]
    ports: dict[int, int]

    @property
    def url(self) -> str:
        """How a pod in the cluster reaches the Service's first port."""
        return f"http://{self.name}:{next(iter(self.ports))}"

    @property
    def aliases(self) -> list[str]:
        """The names a pod can use for it, as cluster DNS answers them."""
        ns = self.namespace
        name = self.name
        return [name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]


@dataclass(frozen=True)
class Plan:
    """The whole overlay: what runs, what routes, and what Docker cannot enforce."""

    workloads: list[Workload]
    services: list[Service]
    claims: list[str]
    not_enforced: list[str]


def quantity(value: str | int | float, what: str) -> float:
    """A Kubernetes quantity ('512Mi', '1Gi', '500m', '1', 2) as a number."""
    match = QUANTITY.match(str(value))
    if match is None:
        raise Unsupported(f"{what}: quantity {value!r} is not understood")
    number, unit = float(match["number"]), match["unit"]
    return number / 1000 if unit == "m" else number * UNITS[unit]


def check_fields(doc: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """Refuse any field the rehearsal does not reproduce or knowingly ignore."""
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise Unsupported(f"{where}: {', '.join(unknown)} not reproduced on Docker")


def one(docs: Iterable[Doc], kind: str, name: str, where: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    if len(found) != 1:
        raise Unsupported(f"{where}: {kind} {name!r} is not in the rendered overlay")
    return found[0]


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) references to earlier env values; unknown ones stay as written."""
    return DEPENDENT_VAR.sub(lambda m: env.get(m[1], m[0]), text)


def environment(container: Doc, docs: list[Doc], where: str) -> dict[str, str]:
    """envFrom ConfigMaps first, then env entries in order, as the kubelet builds them."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if set(source) != {"configMapRef"}:
            raise Unsupported(f"{where}: envFrom {sorted(source)} (only configMapRef)")
        # A ConfigMap from an env file of comments only has no `data` at all.
        env.update(one(docs, "ConfigMap", source["configMapRef"]["name"], where).get("data", {}))
    for entry in container.get("env", []):
        if "value" not in entry:
            raise Unsupported(f"{where}: env {entry['name']} has no literal value")
        env[entry["name"]] = expand(str(entry["value"]), env)
    return env


def probe(kind: str, spec: Doc, ports: Mapping[str, int], where: str) -> Probe:
    check_fields(spec, PROBE_FIELDS, f"{where} {kind}Probe")
    timing = {
        "initial_delay": spec.get("initialDelaySeconds", 0),
        "period": spec.get("periodSeconds", 10),
        "timeout": spec.get("timeoutSeconds", 1),
        "failure_threshold": spec.get("failureThreshold", 3),
        "success_threshold": spec.get("successThreshold", 1),
    }
    if "exec" in spec:
        return Probe(kind, "exec", command=tuple(spec["exec"]["command"]), **timing)
    action, target = ("http", spec.get("httpGet")) if "httpGet" in spec else ("tcp", None)
    target = target or spec.get("tcpSocket")
    if not target:
        raise Unsupported(f"{where} {kind}Probe: no httpGet, tcpSocket or exec")
    if target.get("scheme", "HTTP") != "HTTP" or "httpHeaders" in target or "host" in target:
        raise Unsupported(f"{where} {kind}Probe: only plain HTTP to the pod itself")
    port = target["port"]
    number = ports[port] if isinstance(port, str) else int(port)
    return Probe(kind, action, port=number, path=target.get("path", "/"), **timing)


def mounts(pod: Doc, container: Doc, docs: list[Doc], where: str) -> list[Mount]:
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    result = []
    for mount in container.get("volumeMounts", []):
        if set(mount) - {"name", "mountPath", "readOnly"}:
            raise Unsupported(f"{where}: volumeMount {mount['name']} uses subPath or propagation")
        volume, target = volumes[mount["name"]], mount["mountPath"]
        read_only = bool(mount.get("readOnly", False))
        if "emptyDir" in volume:
            limit = volume["emptyDir"].get("sizeLimit")
            size = int(quantity(limit, where)) if limit else None
            result.append(Mount(target, "tmpfs", size=size, read_only=read_only))
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            one(docs, "PersistentVolumeClaim", claim, where)
            result.append(Mount(target, "volume", claim=claim, read_only=read_only))
        elif "configMap" in volume:
            data = one(docs, "ConfigMap", volume["configMap"]["name"], where)["data"]
            result.append(Mount(target, "files", files=dict(data), read_only=True))
        else:
            raise Unsupported(f"{where}: volume {mount['name']} is not emptyDir, PVC or ConfigMap")
    return result


def container_plan(pod: Doc, docs: list[Doc], where: str) -> Container:
    """The pod's only container, translated field by field."""
    check_fields(pod, POD_FIELDS, f"{where} pod spec")
    if pod.get("enableServiceLinks", True):
        raise Unsupported(f"{where}: enableServiceLinks injects Service variables; set it false")
    if len(pod["containers"]) != 1:
        raise Unsupported(f"{where}: {len(pod['containers'])} containers (one per pod here)")
    [spec] = pod["containers"]
    check_fields(spec, CONTAINER_FIELDS, f"{where} container {spec['name']}")
    pod_security, security = pod.get("securityContext", {}), spec.get("securityContext", {})
    check_fields({**pod_security, **security}, SECURITY_FIELDS, f"{where} securityContext")
    merged = {**pod_security, **security}
    if merged.get("privileged"):
        raise Unsupported(f"{where}: privileged containers are not rehearsed")
    if merged.get("seccompProfile", {}).get("type", "RuntimeDefault") != "RuntimeDefault":
        raise Unsupported(f"{where}: only the RuntimeDefault seccomp profile (Docker's default)")
    user = merged.get("runAsUser")
    group = merged.get("runAsGroup")
    resources = spec.get("resources", {})
    check_fields(resources, {"limits", "requests"}, f"{where} resources")
    limits = resources.get("limits", {})
    check_fields(limits, {"cpu", "memory"}, f"{where} limits")
    env = environment(spec, docs, where)
    ports = {
        p.get("name", str(p["containerPort"])): int(p["containerPort"])
        for p in spec.get("ports", [])
    }
    lifecycle = spec.get("lifecycle", {})
    check_fields(lifecycle, {"preStop"}, f"{where} lifecycle")
    pre_stop = lifecycle.get("preStop", {})
    check_fields(pre_stop, {"sleep"}, f"{where} preStop")
    capabilities = merged.get("capabilities", {})
    return Container(
        image=spec["image"],
        entrypoint=[expand(a, env) for a in spec["command"]] if "command" in spec else None,
        command=[expand(a, env) for a in spec["args"]] if "args" in spec else None,
        environment=env,
        user=None if user is None else f"{user}:{group if group is not None else user}",
        run_as_non_root=bool(merged.get("runAsNonRoot", False)),
        fs_group=pod_security.get("fsGroup"),
        read_only=bool(merged.get("readOnlyRootFilesystem", False)),
        no_new_privileges=merged.get("allowPrivilegeEscalation") is False,
        cap_drop=list(capabilities.get("drop", [])),
        cap_add=list(capabilities.get("add", [])),
        memory=int(quantity(limits["memory"], where)) if "memory" in limits else None,
        nano_cpus=int(quantity(limits["cpu"], where) * 1e9) if "cpu" in limits else None,
        ports=ports,
        mounts=mounts(pod, spec, docs, where),
        probes={
            kind: probe(kind, spec[f"{kind}Probe"], ports, where)
            for kind in ("startup", "readiness", "liveness")
            if f"{kind}Probe" in spec
        },
        pre_stop_seconds=float(pre_stop.get("sleep", {}).get("seconds", 0)),
        grace_seconds=float(pod.get("terminationGracePeriodSeconds", 30)),
    )


def autoscaled(docs: list[Doc], deployment: Doc) -> tuple[int, int]:
    """(floor, ceiling) replicas: the HPA's when one targets the Deployment, else its own."""
    name = deployment["metadata"]["name"]
    for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if target["kind"] == "Deployment" and target["name"] == name:
            floor = int(hpa["spec"].get("minReplicas", 1))
            return floor, int(hpa["spec"]["maxReplicas"])
    replicas = int(deployment["spec"].get("replicas", 1))
    return replicas, replicas


def workload(doc: Doc, docs: list[Doc]) -> Workload:
    kind, name, spec = doc["kind"], doc["metadata"]["name"], doc["spec"]
    where = f"{kind}/{name}"
    template = spec["template"]
    labels = dict(template["metadata"].get("labels", {}))
    if kind == "Deployment":
        check_fields(spec, DEPLOYMENT_FIELDS, where)
        selector = spec["selector"]
        if (
            set(selector) != {"matchLabels"}
            or not selector["matchLabels"].items() <= labels.items()
        ):
            raise Unsupported(
                f"{where}: the selector must be matchLabels that the template carries"
            )
        floor, ceiling = autoscaled(docs, doc)
        return Workload(
            kind, name, labels, container_plan(template["spec"], docs, where), floor, ceiling
        )
    check_fields(spec, JOB_FIELDS, where)
    if template["spec"].get("restartPolicy") not in {"Never", "OnFailure"}:
        raise Unsupported(f"{where}: a Job's restartPolicy must be Never or OnFailure")
    return Workload(
        kind,
        name,
        labels,
        container_plan(template["spec"], docs, where),
        backoff_limit=int(spec.get("backoffLimit", 6)),
        active_deadline=spec.get("activeDeadlineSeconds"),
    )


def service(doc: Doc, workloads: list[Workload]) -> Service:
    spec, name = doc["spec"], doc["metadata"]["name"]
    if spec.get("type", "ClusterIP") != "ClusterIP" or "clusterIP" in spec:
        raise Unsupported(f"Service/{name}: only plain ClusterIP Services")
    selector = dict(spec["selector"])
    selected = [w for w in workloads if selector.items() <= w.labels.items()]
    if not selected:
        raise Unsupported(f"Service/{name}: selects no workload in the overlay")
    ports = {}
    for port in spec["ports"]:
        if port.get("protocol", "TCP") != "TCP":
            raise Unsupported(f"Service/{name}: only TCP ports")
        target = port.get("targetPort", port["port"])
        numbers = {
            w.container.ports[target] if isinstance(target, str) else int(target) for w in selected
        }
        if len(numbers) != 1:
            raise Unsupported(f"Service/{name}: targetPort {target!r} differs across its pods")
        ports[int(port["port"])] = numbers.pop()
    return Service(name, doc["metadata"].get("namespace", "default"), selector, ports)


def plan(docs: list[Doc]) -> Plan:
    """Translate a rendered overlay; raise Unsupported on the first thing Docker cannot do."""
    kinds = {d["kind"] for d in docs}
    unknown = kinds - PASSIVE_KINDS - set(NOT_ENFORCED) - {"Deployment", "Job"}
    if unknown:
        raise Unsupported(f"kinds {', '.join(sorted(unknown))} are not rehearsed on Docker")
    workloads = [workload(d, docs) for d in docs if d["kind"] in {"Deployment", "Job"}]
    not_enforced = [
        f"{d['kind']}/{d['metadata']['name']}: {NOT_ENFORCED[d['kind']]}"
        for d in docs
        if d["kind"] in NOT_ENFORCED
    ]
    return Plan(
        workloads=workloads,
        services=[service(d, workloads) for d in docs if d["kind"] == "Service"],
        claims=[d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"],
        not_enforced=not_enforced,
    )
