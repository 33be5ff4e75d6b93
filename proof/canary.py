"""A bake's canary rollout (its `nox -s canary` on kind), played inside a rehearsal.

After proof/rehearsal.py has applied the kind overlay and scaled it, each `--canary REF`, in
order: the bake's own `python -m tools.canary render --image REF` turns the stable serving
Deployment into its canary, planned by proof/pod_spec.py and started beside the stable pods,
so the Service's proxy sends it its share by pod count. While the bake's `gate` reads every
pod's /metrics from outside, a client pod sends traffic through the Service, counting what
fails (no more than the canary's share may). The gate's decision is then acted on as the kind
flow does: promote (the stable pods replaced one by one with REF, maxUnavailable 0, under
client traffic that must not fail) or roll back (the canary deleted, the stable pods the same
containers), and clients go through the Service again. The bake is driven as a subprocess
from its root, never imported.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from docker.models.containers import Container as DockerContainer

from proof.pod_spec import PASSIVE_KINDS, Doc, Workload, plan
from proof.rehearsal import (
    COMPONENT,
    TICK,
    Failed,
    Pod,
    Rehearsal,
    selects,
    startup_budget,
    terminate,
)

ROWS = 10  # rows per request: the good canary sees well over drift's 200-row minimum
AFTER_SECONDS = 5.0  # clients through the Service once the decision is acted on
# Failures allowed beyond the canary's share of N requests: the proxy's round robin gives one
# pod of k at most ceil(N/k) connections, and a stable pod whose readiness probe times out on
# a busy machine leaves the rotation for a probe period (5 s), raising the canary's share for
# those seconds by 1/(k-1) - 1/k: with 6 pods over a 30 s watch, ~0.6% of the requests per
# such lapse; 2% allows three.
LAPSE_SHARE = 0.02
ROLLOUT_SECONDS = 600  # at most, for clients during a promotion (stopped when it is done)
# A client pod through the Service: for SECONDS or until SIGTERM, the /metadata example
# repeated into ROWS rows, POSTed to /predict; any answer but 200 with ROWS predictions fails.
CLIENT = """
import json, signal, sys, time, urllib.request
base, seconds, rows = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
example = json.load(urllib.request.urlopen(base + "/metadata", timeout=10))["example"]
body = json.dumps({"instances": (example["instances"] * rows)[:rows]}).encode()
sent, failed, statuses, end = 0, 0, {}, time.monotonic() + seconds
while time.monotonic() < end and not stop:
    request = urllib.request.Request(base + "/predict", body, {"Content-Type": "application/json"})
    sent += 1
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, ok = answer.status, len(json.load(answer)["predictions"]) == rows
    except urllib.error.HTTPError as error:
        status, ok = error.code, False
    except (OSError, ValueError) as error:
        status, ok = type(error).__name__, False
    statuses[str(status)] = statuses.get(str(status), 0) + 1
    failed += not ok
print(json.dumps({"requests": sent, "failed": failed, "statuses": statuses}))
"""


def allowed_failures(requests: int, share: float) -> int:
    """Failed requests the canary's share of `requests` explains (see LAPSE_SHARE)."""
    return math.ceil(requests * share) + math.ceil(requests * LAPSE_SHARE)


def bake_python(bake: Path) -> str:
    """The bake's own interpreter if it has a venv, else python3 (its tool is stdlib only)."""
    venv = bake / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else "python3"


def decision(code: int, stdout: str, stderr: str) -> str:
    """The gate's one line, checked against its exit code (0 promote, 1 roll back)."""
    line = (stdout.strip().splitlines() or [""])[0]
    expected = {0: "promote:", 1: "roll back:"}.get(code)
    if expected is None or not line.startswith(expected):
        raise Failed(f"the bake's canary gate exited {code}: {line or stderr.strip()}")
    return line


def canary_workload(docs: list[Doc], canary: Doc) -> Workload:
    """The canary Deployment planned like any other, with the ConfigMaps it reads."""
    context = [d for d in docs if d["kind"] in PASSIVE_KINDS - {"Service"}]
    [workload] = plan([*context, canary]).workloads
    return workload


class Canaries:
    """The canary flow for each REF in turn, against the rehearsal's serving Deployment."""

    def __init__(self, docs: list[Doc], bake: Path, refs: list[str], watch: float) -> None:
        self.docs, self.bake, self.refs, self.watch = docs, bake, refs, watch
        self.python = bake_python(bake)

    def play(self, rehearsal: Rehearsal) -> None:
        [service] = [s for s in rehearsal.plan.services if s.selector.get(COMPONENT) == "serving"]
        self.rehearsal, self.service = rehearsal, service
        [self.stable] = {id(p.workload): p.workload for p in self.stable_pods()}.values()
        self.stable_doc = next(
            d
            for d in self.docs
            if d["kind"] == "Deployment" and d["metadata"]["name"] == self.stable.name
        )
        for ref in self.refs:
            self.one(ref)

    def stable_pods(self) -> list[Pod]:
        pods = self.rehearsal.pods
        return [
            p
            for p in pods
            if selects(self.service, p.workload) and "track" not in p.workload.labels
        ]

    def render(self, ref: str) -> Doc:
        """The bake's `tools.canary render`, fed the stable Deployment as kubectl returns it."""
        result = subprocess.run(
            [self.python, "-m", "tools.canary", "render", "--image", ref],
            input=json.dumps(self.stable_doc),
            cwd=self.bake,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode:
            raise Failed(f"the bake's canary render exited {result.returncode}: {result.stderr}")
        doc: Doc = json.loads(result.stdout)
        return doc

    def one(self, ref: str) -> None:
        rehearsal, before = self.rehearsal, self.fingerprint()
        workload = canary_workload(self.docs, self.render(ref))
        first = len(rehearsal.pods) + len(rehearsal.finished)  # pod names stay unique
        canaries = [rehearsal.start(workload, first + i) for i in range(workload.replicas)]
        print(f"{workload.title}: {len(canaries)} pod(s) on {ref} beside {self.stable.title}")
        try:
            budget = startup_budget([workload])
            rehearsal.wait(
                f"{workload.title} ready", lambda: all(p.ready for p in canaries), budget
            )
        except Failed as failure:
            if workload.name not in str(failure):
                raise
            line = f"roll back: {workload.title} never became ready ({failure})"
        else:
            line = self.gate(ref, canaries)
        print(f"canary {ref}: {line}")
        if line.startswith("promote:"):  # as the kind flow: the stable rolls, then the canary goes

            def rollout() -> None:
                self.promote(ref)
                self.retire(canaries)

            self.counted(f"during the promotion to {ref}", self.traffic(ROLLOUT_SECONDS, rollout))
        else:
            self.retire(canaries)
            if self.fingerprint() != before:
                raise Failed(f"canary {ref} rolled back, but {self.stable.title} changed")
            print(f"rolled back: {self.stable.title} untouched, same {len(before)} containers")
        self.clients_after(ref)

    def gate(self, ref: str, canaries: list[Pod]) -> str:
        """The bake's gate over the pods' /metrics while clients go through the Service."""
        port, stable_pods = next(iter(self.service.ports.values())), self.stable_pods()
        stable = [arg for p in stable_pods for arg in ("--stable", f"http://{p.ip}:{port}")]
        canary = [arg for p in canaries for arg in ("--canary", f"http://{p.ip}:{port}")]
        command = [self.python, "-m", "tools.canary", "gate", *stable, *canary]
        gate = subprocess.Popen(
            [*command, "--watch", f"{self.watch:g}"],
            cwd=self.bake,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        counts = self.traffic(max(1.0, self.watch - 3), busy=lambda: gate.poll() is None)
        stdout, stderr = gate.communicate(timeout=60)
        share = len(canaries) / (len(canaries) + len(stable_pods))
        note = f" (share {share:.3f} of pods on the canary) {counts['statuses']}"
        allowed = allowed_failures(counts["requests"], share)
        self.counted(f"during canary {ref}", counts, allowed, note)
        return decision(gate.returncode, stdout, stderr)

    @staticmethod
    def counted(what: str, counts: dict[str, Any], allowed: int = 0, note: str = "") -> None:
        """Print what clients saw; fail if more requests failed than `allowed`."""
        line = f"{counts['requests']} requests, {counts['failed']} failed"
        print(f"clients {what}: {line}{note}")
        if counts["failed"] > allowed:
            raise Failed(f"clients {what}: {line} (allowed {allowed}) {counts['statuses']}")

    def traffic(
        self,
        seconds: float,
        during: Callable[[], None] | None = None,
        busy: Callable[[], bool] = lambda: False,
    ) -> dict[str, Any]:
        """A client pod through the Service for `seconds` (or until `during` is done), the
        kubelet loop ticking meanwhile; what it counted."""
        rehearsal, image = self.rehearsal, self.stable.container.image
        name = f"{rehearsal.run_id}-client-{uuid.uuid4().hex[:6]}"
        args = (image, CLIENT, self.service.url, f"{seconds:g}", str(ROWS))
        with ThreadPoolExecutor(max_workers=1) as pool:
            run: Future[str] = pool.submit(rehearsal.client_run, *args, name=name)
            if during is not None:
                try:
                    rehearsal.wait(f"client {name}", lambda: bool(self.running(name)), 60)
                    during()
                finally:
                    for container in self.running(name):
                        container.stop(timeout=15)  # SIGTERM: the client prints its counts
            while not run.done() or busy():
                rehearsal.tick()
                time.sleep(TICK)
            counts: dict[str, Any] = json.loads(run.result().splitlines()[-1])
            return counts

    def running(self, name: str) -> list[DockerContainer]:
        found: list[DockerContainer] = self.rehearsal.client.containers.list(filters={"name": name})
        return found

    def unlist(self, pods: list[Pod]) -> None:
        """A deleted pod leaves the Service's endpoints first (and the kubelet loop's view)."""
        for pod in pods:
            self.rehearsal.pods.remove(pod)
            self.rehearsal.finished.append(pod)  # kept for the memory report
            pod.ready = False
        self.rehearsal.publish_endpoints()

    def retire(self, pods: list[Pod]) -> None:
        """Delete pods as the API does: out of the Service, then preStop and SIGTERM."""
        self.unlist(pods)
        with ThreadPoolExecutor(max_workers=max(1, len(pods))) as pool:
            problems = [problem for problem in pool.map(terminate, pods) if problem]
        if problems:
            raise Failed("; ".join(problems))

    def promote(self, ref: str) -> None:
        """`kubectl set image` on the stable Deployment (maxSurge 1, maxUnavailable 0): a new
        pod ready, then an old one deleted (it drains while the next new one starts)."""
        rehearsal, old = self.rehearsal, self.stable_pods()
        new = replace(self.stable, container=replace(self.stable.container, image=ref))
        index = len(rehearsal.pods) + len(rehearsal.finished)
        with ThreadPoolExecutor(max_workers=len(old)) as pool:
            stopping = []
            for number, pod in enumerate(old):
                started = rehearsal.start(new, index + number)
                what = f"{new.title} rollout to {ref}"
                rehearsal.wait(what, lambda started=started: started.ready, startup_budget([new]))
                self.unlist([pod])
                stopping.append(pool.submit(terminate, pod))
            problems = [problem for future in stopping if (problem := future.result())]
        if problems:
            raise Failed("; ".join(problems))
        self.stable = new
        self.stable_doc = copy.deepcopy(self.stable_doc)
        self.stable_doc["spec"]["template"]["spec"]["containers"][0]["image"] = ref
        print(f"promoted: {new.title} rolled to {ref}, {len(old)} pods one by one")

    def fingerprint(self) -> list[tuple[str, str, str]]:
        """Which containers serve as stable, on which image: a rollback must change none."""
        return [(p.name, p.container.id, p.container.attrs["Image"]) for p in self.stable_pods()]

    def clients_after(self, ref: str) -> None:
        images = ", ".join(sorted({p.workload.container.image for p in self.stable_pods()}))
        note = f"; {self.stable.title} runs {images}"
        self.counted(f"after canary {ref}", self.traffic(AFTER_SECONDS), note=note)
