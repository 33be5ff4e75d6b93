"""Rehearse a kustomize overlay on Docker: every Deployment and Job, under its own limits.

For machines without a cluster (CI here, a laptop without kind). It renders the overlay, turns
it into plans (proof/pod_spec.py) and then plays the kubelet and kube-proxy with the Docker SDK:
- containers with the manifest's user, read-only root, capabilities, memory (no swap) and CPU;
- emptyDir as tmpfs with its size limit, PVCs as named volumes (group-owned by fsGroup),
  ConfigMaps as env and files;
- Services as network aliases on one network, answered by a small proxy per Service that maps
  the Service port to the target port and forwards only to ready pods, as kube-proxy does;
- startup, readiness and liveness probes polled at the manifest's periods and thresholds;
- Jobs retried up to backoffLimit within activeDeadlineSeconds;
- Deployments at their autoscaler floor, then scaled to its ceiling.
Any OOM kill, exit, restart, unready pod or failed Job fails it. It is not kind: a bake's
`nox -s deploy` still runs the real thing. From the template's root, against a built bake:

    python -m proof.rehearsal BAKE/k8s/overlays/kind [BAKE/k8s/hpa-load] --image NAME=REF ...
        [--files NAME=DIR]  # DIR's files at http://NAME/ on the network, for a DATA_PATH URL
        [--canary REF ...] [--canary-watch SECONDS]  # then the bake's canary flow, per REF

Overlays are applied in order, each proven before the next (tests/test_rehearsal.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.models.containers import Container as DockerContainer
from docker.types import Mount as DockerMount

from proof.pod_spec import (
    Doc,
    Plan,
    Probe,
    RenderError,
    Service,
    Unsupported,
    Workload,
    plan,
    render,
)
from proof.waiting import free_port

TICK = 0.5  # seconds between two rounds of the kubelet loop
# Kubernetes ignores an image's HEALTHCHECK; its probes are the manifest's, polled below.
NO_HEALTHCHECK = {"test": ["NONE"]}
JOB_BACKOFF = 10.0  # first retry delay of a failed Job pod, doubled each time (as Kubernetes)
COMPONENT = "app.kubernetes.io/component"  # the label that tells serving pods apart
# kube-proxy's stand-in: one process per Service, forwarding each connection to a ready pod.
PROXY = """
import asyncio, itertools, json, sys
ports, endpoints, turn = json.loads(sys.argv[1]), "/endpoints/ready.json", itertools.count()
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
def forward(target):
    async def handle(reader, writer):
        try:
            ready = json.load(open(endpoints))
            pod = ready[next(turn) % len(ready)]
            upstream = await asyncio.open_connection(pod, target)
        except (OSError, ValueError, ZeroDivisionError):
            writer.close()
            return
        pair = pipe(reader, upstream[1]), pipe(upstream[0], writer)
        await asyncio.gather(*pair, return_exceptions=True)
    return handle
async def main():
    servers = [await asyncio.start_server(forward(t), "0.0.0.0", int(p)) for p, t in ports.items()]
    await asyncio.gather(*(s.serve_forever() for s in servers))
asyncio.run(main())
"""
# What a client pod does through the serving Service: read the example, predict with it.
CLIENT = """
import json, sys, urllib.request
base, count = sys.argv[1], int(sys.argv[2])
example = json.load(urllib.request.urlopen(base + "/metadata", timeout=10))["example"]
body = json.dumps(example).encode()
for _ in range(count):
    request = urllib.request.Request(base + "/predict", body, {"Content-Type": "application/json"})
    answer = json.load(urllib.request.urlopen(request, timeout=10))
    assert len(answer["predictions"]) == len(example["instances"]), answer
print(count, "predictions through", base, "rows", len(example["instances"]))
"""
# What the kubelet's Job check is here: the in-cluster tracking server holds a champion.
CHAMPION = """
import json, sys, urllib.parse, urllib.request
request = urllib.request.Request(sys.argv[1] + "/api/2.0/mlflow/registered-models/search")
models = json.load(urllib.request.urlopen(request, timeout=10)).get("registered_models", [])
aliases = [(m["name"], a) for m in models for a in m.get("aliases", [])]
found = [(name, a["version"]) for name, a in aliases if a["alias"] == "champion"]
for name, version in found:  # and the data its run trained on (the run's `data_source`)
    query = urllib.parse.urlencode({"name": name, "version": version})
    get = sys.argv[1] + "/api/2.0/mlflow/model-versions/get?" + query
    run_id = json.load(urllib.request.urlopen(get, timeout=10))["model_version"]["run_id"]
    get = sys.argv[1] + "/api/2.0/mlflow/runs/get?run_id=" + run_id
    params = json.load(urllib.request.urlopen(get, timeout=10))["run"]["data"].get("params", [])
    source = {p["key"]: p["value"] for p in params}.get("data_source", "?")
    print(f"champion: {name} version {version} trained on {source}")
sys.exit(0 if found else 1)
"""
# The team's data store, as far as the training Job can tell: plain HTTP on the network.
FILES = "import http.server as s; s.test(s.SimpleHTTPRequestHandler, port=80, bind='0.0.0.0')"


class Failed(RuntimeError):
    """The rehearsal saw what would fail in the cluster: one line, with the pod's log below."""


def with_images(docs: list[Doc], images: dict[str, str]) -> list[Doc]:
    """Point containers at the given references, as `kustomize edit set image` would."""
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job"}:
            for container in doc["spec"]["template"]["spec"]["containers"]:
                name = container["image"].split("@")[0].rsplit(":", 1)[0]
                container["image"] = images.get(name, container["image"])
    return docs


@dataclass
class Pod:
    """One running container and the kubelet's view of it."""

    workload: Workload
    name: str
    container: DockerContainer
    started: float
    started_ok: bool = False
    ready: bool = False
    failures: dict[str, int] = field(default_factory=dict)
    successes: dict[str, int] = field(default_factory=dict)
    next_probe: dict[str, float] = field(default_factory=dict)
    peak: int = 0
    ip: str = ""


class Rehearsal:
    """The overlay's workloads on one Docker network, watched until they are proven or fail."""

    def __init__(
        self, client: docker.DockerClient, the_plan: Plan, log: Callable[[str], None] = print
    ) -> None:
        self.client, self.plan, self.log = client, the_plan, log
        self.run_id = f"rehearsal-{uuid.uuid4().hex[:8]}"
        self.pods: list[Pod] = []
        self.finished: list[Pod] = []
        self.proxies: dict[str, tuple[DockerContainer, Path]] = {}
        self.oom: list[str] = []
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{self.run_id}-"))
        self.network = client.networks.create(self.run_id, driver="bridge", labels=self.labels)
        self.volumes = {
            claim: client.volumes.create(f"{self.run_id}-{claim}", labels=self.labels)
            for claim in the_plan.claims
        }
        self._events = threading.Thread(target=self._watch_oom, daemon=True)
        self._events.start()

    @property
    def labels(self) -> dict[str, str]:
        return {"rehearsal": self.run_id}

    # ---- the engine's events: an OOM kill anywhere in a container is a failure --------------
    def _watch_oom(self) -> None:
        filters = {"type": "container", "event": "oom", "label": f"rehearsal={self.run_id}"}
        with contextlib.suppress(Exception):
            for event in self.client.events(decode=True, filters=filters):
                self.oom.append(event.get("Actor", {}).get("Attributes", {}).get("name", "?"))

    # ---- containers ---------------------------------------------------------------------------
    def _mounts(
        self, workload: Workload, pod_name: str
    ) -> tuple[list[DockerMount], dict[str, str]]:
        mounts, tmpfs = [], {}
        for mount in workload.container.mounts:
            if mount.kind == "tmpfs":
                size = f",size={mount.size}" if mount.size else ""
                tmpfs[mount.target] = f"{'ro' if mount.read_only else 'rw'},mode=1777{size}"
            elif mount.kind == "volume":
                volume = self.volumes[mount.claim].name
                mounts.append(
                    DockerMount(mount.target, volume, "volume", read_only=mount.read_only)
                )
            else:
                folder = self.scratch / pod_name / mount.target.strip("/").replace("/", "_")
                folder.mkdir(parents=True)
                for key, value in mount.files.items():
                    (folder / key).write_text(value)
                    (folder / key).chmod(0o644)
                folder.chmod(0o755)
                mounts.append(DockerMount(mount.target, str(folder), "bind", read_only=True))
        return mounts, tmpfs

    def own_volumes(self, workload: Workload) -> None:
        """fsGroup: the kubelet makes each volume group-owned and group-writable, setgid."""
        group = workload.container.fs_group
        claims = [m for m in workload.container.mounts if m.kind == "volume"]
        if group is None or not claims:
            return
        script = " && ".join(
            f"chgrp -R {group} {m.target} && chmod -R g+rwX {m.target} && chmod g+s {m.target}"
            for m in claims
        )
        self.client.containers.run(
            workload.container.image,
            entrypoint=["/bin/sh", "-c", script],
            user="0:0",
            mounts=[DockerMount(m.target, self.volumes[m.claim].name, "volume") for m in claims],
            network_disabled=True,
            remove=True,
            labels=self.labels,
            healthcheck=NO_HEALTHCHECK,
        )

    def _check_non_root(self, workload: Workload) -> None:
        spec = workload.container
        if not spec.run_as_non_root:
            return
        user = spec.user or self.client.images.get(spec.image).attrs["Config"].get("User", "")
        uid = (user or "0").split(":")[0]
        if not uid.isdigit() or uid == "0":
            raise Failed(f"{workload.title}: runAsNonRoot, but the user is {user or 'root'!r}")

    def start(self, workload: Workload, index: int) -> Pod:
        """Create and start one pod of `workload`, on the network with its Services' names."""
        spec = workload.container
        self._check_non_root(workload)
        name = f"{self.run_id}-{workload.name}-{index}"
        mounts, tmpfs = self._mounts(workload, name)
        security = ["no-new-privileges"] if spec.no_new_privileges else []
        endpoint = self.client.api.create_endpoint_config(aliases=[name])
        container = self.client.containers.create(
            spec.image,
            name=name,
            hostname=name[-63:],
            entrypoint=spec.entrypoint,
            command=spec.command,
            environment=spec.environment,
            user=spec.user,
            group_add=[str(spec.fs_group)] if spec.fs_group is not None else None,
            read_only=spec.read_only,
            security_opt=security,
            cap_drop=spec.cap_drop,
            cap_add=spec.cap_add,
            mem_limit=spec.memory,
            memswap_limit=spec.memory,  # no swap: the limit is a hard limit
            nano_cpus=spec.nano_cpus,
            mounts=mounts,
            tmpfs=tmpfs,
            network=self.network.name,
            networking_config={self.network.name: endpoint},
            labels={**self.labels, **workload.labels},
            healthcheck=NO_HEALTHCHECK,
            detach=True,
        )
        container.start()
        container.reload()
        pod = Pod(workload, name, container, time.monotonic())
        pod.ip = container.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]
        pod.started_ok = "startup" not in spec.probes
        threading.Thread(target=self._sample_memory, args=(pod,), daemon=True).start()
        self.pods.append(pod)
        return pod

    def _sample_memory(self, pod: Pod) -> None:
        """Peak memory as the kernel counts it against the limit (stats stream, ~1 s)."""
        with contextlib.suppress(Exception):
            for stats in pod.container.stats(stream=True, decode=True):
                memory = stats.get("memory_stats", {})
                pod.peak = max(pod.peak, memory.get("max_usage", 0), memory.get("usage", 0))
                if not memory:
                    return

    # ---- services -----------------------------------------------------------------------------
    def start_services(self, image: str) -> None:
        """One proxy per Service, answering on its names and ports (non-root, read-only)."""
        for service in self.plan.services:
            folder = self.scratch / f"svc-{service.name}"
            folder.mkdir()
            (folder / "ready.json").write_text("[]")
            folder.chmod(0o755)
            endpoint = self.client.api.create_endpoint_config(aliases=service.aliases)
            proxy = self.client.containers.run(
                image,
                entrypoint=["python", "-c", PROXY, json.dumps(service.ports)],
                command=[],
                name=f"{self.run_id}-svc-{service.name}",
                user="65534:65534",
                read_only=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
                mounts=[DockerMount("/endpoints", str(folder), "bind", read_only=True)],
                network=self.network.name,
                networking_config={self.network.name: endpoint},
                labels=self.labels,
                healthcheck=NO_HEALTHCHECK,
                detach=True,
            )
            self.proxies[service.name] = (proxy, folder)

    def serve_files(self, image: str, name: str, source: Path) -> None:
        """Serve `source`'s files at http://<name>/ on the network (a stand-in for the team's
        data store that DATA_PATH points at), non-root and read-only."""
        folder = self.scratch / f"files-{name}"
        shutil.copytree(source, folder)
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        endpoint = self.client.api.create_endpoint_config(aliases=[name])
        self.client.containers.run(
            image,
            entrypoint=["python", "-c", FILES],
            command=[],
            working_dir="/files",
            name=f"{self.run_id}-files-{name}",
            user="65534:65534",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
            mounts=[DockerMount("/files", str(folder), "bind", read_only=True)],
            network=self.network.name,
            networking_config={self.network.name: endpoint},
            labels=self.labels,
            healthcheck=NO_HEALTHCHECK,
            detach=True,
        )

    def publish_endpoints(self) -> None:
        """Write each Service's ready pods where its proxy reads them (kube-proxy's Endpoints)."""
        for service in self.plan.services:
            ready = [p.ip for p in self.pods if p.ready and selects(service, p.workload)]
            target = self.proxies[service.name][1] / "ready.json"
            temporary = target.with_suffix(".tmp")
            temporary.write_text(json.dumps(ready))
            temporary.chmod(0o644)
            temporary.replace(target)

    # ---- the kubelet --------------------------------------------------------------------------
    def probe(self, pod: Pod, probe: Probe) -> bool:
        if probe.action == "exec":
            result = pod.container.exec_run(list(probe.command))
            return bool(result.exit_code == 0)
        if probe.action == "tcp":
            with (
                contextlib.suppress(OSError),
                socket.create_connection((pod.ip, probe.port), probe.timeout),
            ):
                return True
            return False
        url = f"http://{pod.ip}:{probe.port}{probe.path}"
        try:
            with urllib.request.urlopen(url, timeout=probe.timeout) as answer:
                status: int = answer.status
                return 200 <= status < 400
        except urllib.error.HTTPError as error:
            return 200 <= error.code < 400
        except OSError:
            return False

    def _due(self, pod: Pod, probe: Probe, now: float) -> bool:
        first = pod.started + probe.initial_delay
        if now < pod.next_probe.get(probe.kind, first):
            return False
        pod.next_probe[probe.kind] = now + probe.period
        return True

    def _run_probe(self, pod: Pod, probe: Probe) -> bool | None:
        """True/False once a threshold is crossed, None while undecided."""
        if self.probe(pod, probe):
            pod.failures[probe.kind] = 0
            pod.successes[probe.kind] = pod.successes.get(probe.kind, 0) + 1
            return True if pod.successes[probe.kind] >= probe.success_threshold else None
        pod.successes[probe.kind] = 0
        pod.failures[probe.kind] = pod.failures.get(probe.kind, 0) + 1
        return False if pod.failures[probe.kind] >= probe.failure_threshold else None

    def tick(self) -> None:
        """One round: fail on OOM or exit, run the probes that are due, move Jobs on."""
        if self.oom:
            raise Failed(f"OOM kill in {self.oom[0]} (limit {self._limit_of(self.oom[0])})")
        now = time.monotonic()
        for pod in list(self.pods):
            pod.container.reload()
            state = pod.container.attrs["State"]
            limit = mib(pod.workload.container.memory)
            if state["OOMKilled"]:
                raise Failed(f"{pod.name} was OOM-killed under its limit of {limit}")
            if pod.workload.kind == "Job":
                if state["Status"] == "exited":
                    self.pods.remove(pod)
                    self.finished.append(pod)
            elif state["Status"] != "running":
                code = state["ExitCode"]
                raise Failed(f"{pod.name} stopped (exit {code}): a restart in the cluster")
            else:
                self._probe_due(pod, now)
        self.publish_endpoints()

    def _probe_due(self, pod: Pod, now: float) -> None:
        """The kubelet's probes: startup first; then liveness (a failure restarts) and readiness."""
        probes = pod.workload.container.probes
        if not pod.started_ok:
            startup = probes["startup"]
            if not self._due(pod, startup, now):
                return
            verdict = self._run_probe(pod, startup)
            if verdict is False:
                times = startup.failure_threshold
                raise Failed(f"{pod.name}: startup probe failed {times} times: restarted")
            pod.started_ok = bool(verdict)
            if pod.started_ok:  # the other probes start their periods now
                pod.next_probe.clear()
                pod.started = now
            return
        liveness = probes.get("liveness")
        if liveness and self._due(pod, liveness, now) and self._run_probe(pod, liveness) is False:
            raise Failed(f"{pod.name}: liveness probe failed: restarted")
        readiness = probes.get("readiness")
        if readiness is None:
            pod.ready = True
        elif self._due(pod, readiness, now):
            verdict = self._run_probe(pod, readiness)
            if verdict is not None:
                pod.ready = verdict

    def _limit_of(self, name: str) -> str:
        for pod in self.pods + self.finished:
            if pod.name == name:
                return mib(pod.workload.container.memory)
        return "?"

    # ---- phases -------------------------------------------------------------------------------
    def wait(self, what: str, done: Callable[[], bool], deadline: float) -> None:
        end = time.monotonic() + deadline
        while not done():
            if time.monotonic() > end:
                raise Failed(f"{what}: not done within {deadline:.0f} s")
            self.tick()
            time.sleep(TICK)

    def run_job(self, workload: Workload) -> Pod:
        """Run a Job's pod to completion, retrying up to backoffLimit as the Job controller does."""
        self.own_volumes(workload)
        started, failures = time.monotonic(), 0
        deadline = workload.active_deadline or 3600
        while True:
            pod = self.start(workload, failures)
            remaining = deadline - (time.monotonic() - started)
            self.wait(
                f"{workload.title} (activeDeadlineSeconds)", self.finished_check(pod), remaining
            )
            code = pod.container.attrs["State"]["ExitCode"]
            if code == 0:
                self.log(f"{workload.title}: complete after {failures} failed attempts")
                return pod
            failures += 1
            self.log(f"{workload.title}: attempt {failures} exited {code}\n{tail(pod.container)}")
            if failures > workload.backoff_limit:
                limit = workload.backoff_limit
                raise Failed(f"{workload.title}: failed {failures} times (backoffLimit {limit})")
            pause_until = time.monotonic() + JOB_BACKOFF * 2 ** (failures - 1)
            while time.monotonic() < pause_until:
                self.tick()
                time.sleep(TICK)

    def finished_check(self, pod: Pod) -> Callable[[], bool]:
        return lambda: pod in self.finished

    def scale(self, workload: Workload, replicas: int) -> None:
        have = [p for p in self.pods if p.workload is workload]
        for index in range(len(have), replicas):
            self.start(workload, index)

    def all_ready(self) -> bool:
        return all(p.ready for p in self.pods if p.workload.kind == "Deployment")

    def client_run(self, image: str, script: str, *args: str, name: str | None = None) -> str:
        """Run `script` in a throwaway pod on the network (as a restricted client would)."""
        output = self.client.containers.run(
            image,
            name=name,
            entrypoint=["python", "-c", script, *args],
            command=[],
            user="65534:65534",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            network=self.network.name,
            labels=self.labels,
            healthcheck=NO_HEALTHCHECK,
            remove=True,
            stdout=True,
            stderr=True,
        )
        return bytes(output).decode().strip()

    def port_forward_view(self, uri: str) -> str:
        """What `kubectl port-forward svc/<name> <any local port>` shows: the server answers a
        request whose Host is loopback on an arbitrary port (MLflow checks Host headers)."""
        name, _, port = uri.split("://", 1)[-1].partition(":")
        [service] = [s for s in self.plan.services if s.name == name.split(".")[0]]
        target = service.ports[int(port or 80)]
        pod = next(p for p in self.pods if p.ready and selects(service, p.workload))
        host = f"localhost:{free_port()}"
        request = urllib.request.Request(
            f"http://{pod.ip}:{target}/api/2.0/mlflow/registered-models/search",
            headers={"Host": host},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - our pod
                return f"Service/{service.name} via port-forward (Host {host}): {answer.status}"
        except urllib.error.HTTPError as error:
            raise Failed(f"Service/{service.name} refuses Host {host}: {error.code}") from None

    def stop_all(self) -> list[str]:
        """Stop every pod at once as the kubelet does (see `terminate`)."""
        with ThreadPoolExecutor(max_workers=max(1, len(self.pods))) as pool:
            return [problem for problem in pool.map(terminate, self.pods) if problem]

    def answered(self, service: Service) -> dict[str, int]:
        """Requests each ready pod behind `service` has answered, from its own /metrics."""
        counts = {}
        for pod in self.pods:
            if pod.ready and selects(service, pod.workload):
                port = next(iter(service.ports.values()))
                url = f"http://{pod.ip}:{port}/metrics"
                with urllib.request.urlopen(url, timeout=5) as answer:
                    text = answer.read().decode()
                counts[pod.name.removeprefix(f"{self.run_id}-")] = sum(
                    int(float(line.rsplit(" ", 1)[1]))
                    for line in text.splitlines()
                    if line.startswith("http_requests_total{") and 'endpoint="/predict"' in line
                )
        return counts

    def remove(self) -> None:
        for container in self.client.containers.list(
            all=True, filters={"label": f"rehearsal={self.run_id}"}
        ):
            container.remove(force=True)
        with contextlib.suppress(docker.errors.APIError):
            self.network.remove()
        for volume in self.volumes.values():
            with contextlib.suppress(docker.errors.APIError):
                volume.remove(force=True)
        shutil.rmtree(self.scratch, ignore_errors=True)


def terminate(pod: Pod) -> str | None:
    """Stop a pod as the kubelet does: preStop, SIGTERM, SIGKILL after the grace period;
    what went wrong, if it needed the SIGKILL."""
    spec = pod.workload.container
    time.sleep(spec.pre_stop_seconds)
    pod.container.stop(timeout=int(spec.grace_seconds - spec.pre_stop_seconds))
    pod.container.reload()
    if pod.container.attrs["State"]["ExitCode"] == 137:
        return f"{pod.name}: killed after its grace period of {spec.grace_seconds:.0f} s"
    return None


def selects(service: Service, workload: Workload) -> bool:
    return service.selector.items() <= workload.labels.items()


def mib(value: int | None) -> str:
    return "none" if value is None else f"{value / 2**20:.0f} MiB"


def tail(container: DockerContainer, lines: int = 40) -> str:
    with contextlib.suppress(docker.errors.APIError):
        return bytes(container.logs(tail=lines)).decode(errors="replace")
    return ""


def startup_budget(workloads: list[Workload]) -> float:
    """How long the probes allow a pod to become ready, plus a margin for a busy machine."""
    probes = [p for w in workloads for p in w.container.probes.values()]
    return max((p.period * p.failure_threshold + p.initial_delay for p in probes), default=60) + 30


def apply(rehearsal: Rehearsal, stage: Plan) -> None:
    """What `kubectl apply -k` of one overlay starts: everything at once, Jobs to completion
    (they retry while their servers start), then every Deployment ready."""
    for line in stage.not_enforced:
        print(f"not enforced on Docker: {line}")
    deployments = [w for w in stage.workloads if w.kind == "Deployment"]
    for workload in deployments:
        rehearsal.own_volumes(workload)
        rehearsal.scale(workload, workload.replicas)
        print(f"{workload.title}: {workload.replicas} replica(s) started")
    for job in (w for w in stage.workloads if w.kind == "Job"):
        pod = rehearsal.run_job(job)
        print(f"{job.title} said: {tail(pod.container, 1).strip()}")
        uri = job.container.environment.get("MLFLOW_TRACKING_URI")
        if uri:
            try:
                print(rehearsal.client_run(job.container.image, CHAMPION, uri))
            except docker.errors.ContainerError as error:
                message = f"{job.title} finished but {uri} has no 'champion' alias"
                raise Failed(f"{message}: {error.stderr!r}") from None
            print(rehearsal.port_forward_view(uri))
    rehearsal.wait("every Deployment ready", rehearsal.all_ready, startup_budget(deployments))
    if deployments:
        print("ready: " + ", ".join(f"{w.title} x{w.replicas}" for w in deployments))


def rehearse(
    stages: list[Plan],
    client: docker.DockerClient,
    scale_to: int | None,
    files: dict[str, Path] | None = None,
    then: Callable[[Rehearsal], None] | None = None,
) -> None:
    """Apply each overlay in turn and prove it, scale out and prove it again, stop it all.
    `files`: folders served over HTTP on the network first, each under its name; `then`:
    what runs on the scaled overlay before it stops (the canaries, proof/canary.py)."""
    first, later = stages[0], stages[1:]
    for stage in later:
        if stage.services or stage.claims:
            raise Unsupported("only the first overlay may declare Services and volumes")
    deployments = [w for w in first.workloads if w.kind == "Deployment"]
    serving = [s for s in first.services if s.selector.get(COMPONENT) == "serving"]
    client_image = next(
        w.container.image for w in deployments if any(selects(s, w) for s in serving)
    )
    rehearsal = Rehearsal(client, first)
    try:
        rehearsal.start_services(client_image)
        for name, folder in (files or {}).items():
            rehearsal.serve_files(client_image, name, folder)
        apply(rehearsal, first)
        for service in serving:
            print(rehearsal.client_run(client_image, CLIENT, service.url, "20"))
        for stage in later:
            apply(rehearsal, stage)
        for workload in deployments:
            target = scale_to or workload.max_replicas
            if target != workload.replicas:
                rehearsal.scale(workload, target)
                what = f"{workload.title} scaled to {target}"
                rehearsal.wait(what, rehearsal.all_ready, startup_budget([workload]))
                print(f"{workload.title}: scaled to {target}, all ready")
        for service in serving:
            print(rehearsal.client_run(client_image, CLIENT, service.url, "50"))
            answered = rehearsal.answered(service)
            print(f"Service/{service.name} spread /predict over its pods: {answered}")
            if not all(answered.values()):
                raise Failed(f"Service/{service.name}: a ready pod got no traffic: {answered}")
        if then is not None:
            then(rehearsal)
        rehearsal.tick()
        seen = rehearsal.pods + rehearsal.finished
        problems = rehearsal.stop_all()
        report(seen)
        if problems:
            raise Failed("; ".join(problems))
    except Failed as failure:
        report(rehearsal.pods + rehearsal.finished)
        for pod in rehearsal.pods + rehearsal.finished:
            running = pod.container.attrs["State"]["Status"] == "running"
            if pod.name in str(failure) or not running or not pod.ready:
                print(f"--- {pod.name} (last lines) ---\n{tail(pod.container)}")
        raise
    finally:
        rehearsal.remove()


def report(pods: list[Pod]) -> None:
    """Each workload's peak memory against its limit."""
    by_workload: dict[str, list[Pod]] = {}
    for pod in pods:
        by_workload.setdefault(pod.workload.title, []).append(pod)
    for title, group in by_workload.items():
        limit = group[0].workload.container.memory
        peak = max(p.peak for p in group)
        share = f" ({100 * peak / limit:.0f}%)" if limit else ""
        print(f"peak memory {title}: {mib(peak)} of {mib(limit)}{share} over {len(group)} pod(s)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overlays", type=Path, nargs="+", help="applied in this order")
    parser.add_argument("--image", action="append", default=[], metavar="NAME=REF")
    parser.add_argument("--scale", type=int, help="replicas after the floor (default: HPA max)")
    parser.add_argument(
        "--files",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="serve DIR at http://NAME/ on the network (e.g. the CSV a DATA_PATH names)",
    )
    parser.add_argument(
        "--canary",
        action="append",
        default=[],
        metavar="REF",
        help="once scaled, roll REF out as the bake's canary flow does (proof/canary.py)",
    )
    parser.add_argument("--canary-watch", type=float, default=30, metavar="SECONDS")
    args = parser.parse_args(argv)
    images = dict(pair.split("=", 1) for pair in args.image)
    files = {name: Path(folder) for name, folder in (p.split("=", 1) for p in args.files)}
    try:
        rendered = [with_images(render(overlay), images) for overlay in args.overlays]
        stages = [plan(docs) for docs in rendered]
        then = None
        if args.canary:  # imported here: proof/canary.py builds on this module
            from proof.canary import Canaries

            bake = args.overlays[0].resolve().parents[2]  # BAKE/k8s/overlays/NAME
            then = Canaries(rendered[0], bake, args.canary, args.canary_watch).play
        client = docker.from_env(timeout=120)
        rehearse(stages, client, args.scale, files, then)
    except (Unsupported, Failed, RenderError) as error:
        print(f"rehearsal failed: {error}", file=sys.stderr)
        return 1
    except docker.errors.DockerException as error:
        print(f"rehearsal failed: Docker: {error}", file=sys.stderr)
        return 1
    print("rehearsal passed: every workload ran under its own limits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
