"""Deploy, scale and remove the kind overlay: what `nox -s deploy/scale/undeploy` and CI run.

    python -m tools.cluster deploy --image NAME=REF [--image ...] [--load] [--pull-secret]
    python -m tools.cluster scale N
    python -m tools.cluster autoscale --image NAME=REF   # in-cluster load: HPA out and back in
    python -m tools.cluster undeploy

Only the standard library, so it runs from any Python 3.11+ with kind, kubectl and docker on
PATH; from the project root, as `python -m` puts it on the import path.
The images are set in a generated kustomization under build/ that wraps k8s/overlays/kind, so
no tracked file changes (the same effect as `kustomize edit set image`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tools.project import ROOT, names

KIND_CONFIG = ROOT / "k8s" / "kind-config.yaml"
OVERLAY = ROOT / "k8s" / "overlays" / "kind"
LOAD = ROOT / "k8s" / "hpa-load"
GENERATED = ROOT / "build" / "k8s"
# The names come from pyproject.toml's [tool.mlops] (tools/project.py); the cluster is named
# after the Deployment, as the kind overlay's jobs after it.
CLUSTER = names().deployment
NAMESPACE = names().namespace
DEPLOYMENT = names().deployment
TRAIN_JOB = f"{DEPLOYMENT}-train"
LOAD_JOB = f"{DEPLOYMENT}-load"
# kind has no metrics server; the autoscaler needs one (pinned release, kubelets self-signed).
METRICS_SERVER = (
    "https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.8.1/components.yaml"
)
# The serving pods, as the Deployment labels them (k8s/base/deployment.yaml).
SERVING_PODS = f"app.kubernetes.io/name={DEPLOYMENT},app.kubernetes.io/component=serving"
PULL_SECRET = "registry-credentials"  # noqa: S105 - a Secret's name, not a password
INSTALL = {
    "kind": "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "kubectl": "install kubectl: https://kubernetes.io/docs/tasks/tools/#kubectl",
    "docker": "install Docker: https://docs.docker.com/engine/install/",
}


class ClusterError(RuntimeError):
    """A step failed; the message says which and what to do."""


def require(*tools: str) -> None:
    """Fail with one line per missing tool saying how to install it."""
    missing = [INSTALL[tool] for tool in tools if shutil.which(tool) is None]
    if missing:
        raise ClusterError("; ".join(missing))


def run(*args: str, stdin: str | None = None) -> str:
    """Run a command, echoing it; raise ClusterError with its output if it fails."""
    print("+", " ".join(args), flush=True)
    result = subprocess.run(  # noqa: S603 - arguments are ours, no shell
        args, input=stdin, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ClusterError(
            f"{args[0]} {args[1]} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout


def kubectl(*args: str, stdin: str | None = None) -> str:
    return run("kubectl", "--context", f"kind-{CLUSTER}", *args, stdin=stdin)


def ensure_cluster() -> None:
    """Create the kind cluster from k8s/kind-config.yaml unless it exists."""
    if CLUSTER in run("kind", "get", "clusters").split():
        print(f"kind cluster {CLUSTER!r} exists")
        return
    run("kind", "create", "cluster", "--config", str(KIND_CONFIG), "--wait", "180s")


def parse_images(pairs: Sequence[str]) -> dict[str, str]:
    """`name=ref` pairs -> {name: ref}; the name is the one the manifests use."""
    images = {}
    for pair in pairs:
        name, sep, ref = pair.partition("=")
        if not sep or not name or not ref:
            raise ClusterError(f"--image {pair!r} is not NAME=REF, e.g. my-image=my-image:abc1234")
        images[name] = ref
    return images


def image_entry(name: str, ref: str) -> dict[str, str]:
    """A kustomize `images:` entry pinning `name` to `ref` (repo:tag or repo@sha256:...)."""
    repo, at, digest = ref.partition("@")
    if at:
        return {"name": name, "newName": repo, "digest": digest}
    slash = repo.rfind("/")
    colon = repo.rfind(":")
    if colon > slash:
        return {"name": name, "newName": repo[:colon], "newTag": repo[colon + 1 :]}
    raise ClusterError(
        f"image {ref!r} has neither a tag nor a digest: never deploy an implicit :latest"
    )


def write_kustomization(images: dict[str, str], pull_secret: bool, source: Path = OVERLAY) -> Path:
    """Wrap `source` with the given images (and pull secret) in build/k8s/<source's name>."""
    directory = GENERATED / source.name
    directory.mkdir(parents=True, exist_ok=True)
    kustomization: dict[str, object] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(source, directory)],
        "images": [image_entry(name, ref) for name, ref in images.items()],
    }
    if pull_secret:
        kustomization["patches"] = [
            {
                "target": {"kind": "ServiceAccount"},
                "patch": json.dumps(
                    [{"op": "add", "path": "/imagePullSecrets", "value": [{"name": PULL_SECRET}]}]
                ),
            }
        ]
    # JSON is YAML: kustomize reads it as is.
    (directory / "kustomization.yaml").write_text(json.dumps(kustomization, indent=2) + "\n")
    return directory


def create_pull_secret() -> None:
    """A docker-registry Secret from REGISTRY_SERVER/USERNAME/PASSWORD (e.g. GHCR in CI)."""
    try:
        server, user, password = (
            os.environ[f"REGISTRY_{key}"] for key in ("SERVER", "USERNAME", "PASSWORD")
        )
    except KeyError as missing:
        raise ClusterError(f"--pull-secret needs the environment variable {missing}") from None
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = {"auths": {server: {"username": user, "password": password, "auth": auth}}}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": PULL_SECRET, "namespace": NAMESPACE},
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(secret))


def wait_for_listener(
    proc: subprocess.Popen[bytes], port: int, what: str, timeout: float = 20
) -> None:
    """Return once `proc` accepts connections on loopback `port`; if it exits, raise its stderr."""
    end = time.monotonic() + timeout
    while proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > end:
                raise ClusterError(f"nothing listens on port {port} after {timeout:.0f}s") from None
            time.sleep(0.2)
    stderr = proc.stderr.read().decode().strip() if proc.stderr else ""
    raise ClusterError(f"{what} exited {proc.returncode}: {stderr or 'no error output'}")


@contextlib.contextmanager
def port_forward(service: str, port: int) -> Iterator[str]:
    """`kubectl port-forward` to a Service on a free local port; yield its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    args = ["kubectl", "--context", f"kind-{CLUSTER}", "-n", NAMESPACE, "port-forward"]
    # stdout (a line per connection) is not read, so it must not fill a pipe; stderr is the error.
    proc = subprocess.Popen(  # noqa: S603
        [*args, f"svc/{service}", f"{local}:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_listener(proc, local, f"kubectl port-forward svc/{service}")
        yield f"http://127.0.0.1:{local}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def http(url: str, body: object | None = None, timeout: float = 5) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our URL
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:  # refused, reset, timed out: one line naming the URL
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        raise ClusterError(f"{url}: {reason}") from None


def smoke_test(deadline: float = 60) -> None:
    """Through a port-forward: /readyz answers 200 and /predict answers the model's own example."""
    with port_forward(DEPLOYMENT, 80) as base:
        end = time.monotonic() + deadline
        while True:
            try:
                status, body = http(f"{base}/readyz")
                if status == 200:
                    break
            except ClusterError as error:  # the forward is still starting
                status, body = 0, str(error)
            if time.monotonic() > end:
                raise ClusterError(
                    f"/readyz did not answer 200 within {deadline:.0f}s: {status} {body}"
                )
            time.sleep(1)
        status, body = http(f"{base}/metadata")
        example = json.loads(body).get("example") if status == 200 else None
        if not example:
            raise ClusterError(
                f"/metadata answered {status} without an input example: {body[:500]}"
            )
        status, body = http(f"{base}/predict", example)
        if status != 200 or "predictions" not in body:
            raise ClusterError(f"/predict answered {status}: {body[:500]}")
        print(f"/predict -> {body[:200]}")


def job_outcome(job: dict[str, Any]) -> str | None:
    """'complete', 'failed: <reason> <message>', or None while the Job still runs."""
    for condition in job.get("status", {}).get("conditions", []):
        if condition.get("status") != "True":
            continue
        if condition["type"] == "Complete":
            return "complete"
        if condition["type"] == "Failed":
            return f"failed: {condition.get('reason', '')} {condition.get('message', '')}".strip()
    return None


def wait_for_job(name: str, timeout: float = 600) -> None:
    """Wait until the Job completes; fail at once when it fails (with its last log lines)."""
    end = time.monotonic() + timeout
    while (outcome := job_outcome(get_json("job", name))) is None:
        if time.monotonic() > end:
            raise ClusterError(f"job/{name} neither completed nor failed within {timeout:.0f}s")
        time.sleep(3)
    if outcome != "complete":
        try:
            logs = kubectl("-n", NAMESPACE, "logs", f"job/{name}", "--tail=20").strip()
        except ClusterError as error:
            logs = str(error)
        raise ClusterError(f"job/{name} {outcome}; its last log lines:\n{logs}")
    print(f"job/{name} complete")


def get_json(kind: str, name: str) -> dict[str, Any]:
    """One object of the namespace, as kubectl prints it in JSON."""
    found: dict[str, Any] = json.loads(kubectl("-n", NAMESPACE, "get", kind, name, "-o", "json"))
    return found


def deploy(images: dict[str, str], load: bool, pull_secret: bool, create: bool) -> None:
    """Create the cluster if needed, load images, apply the overlay, wait, smoke-test."""
    require("kind", "kubectl", "docker")
    if create:
        ensure_cluster()
    if load:
        for ref in images.values():
            run("kind", "load", "docker-image", "--name", CLUSTER, ref)
    directory = write_kustomization(images, pull_secret)
    kubectl("apply", "-f", str(OVERLAY / "namespace.yaml"))
    if pull_secret:
        create_pull_secret()
    # A Job's pod template is immutable: replace the previous training run.
    kubectl("-n", NAMESPACE, "delete", "job", TRAIN_JOB, "--ignore-not-found")
    kubectl("apply", "-k", str(directory))
    kubectl("-n", NAMESPACE, "rollout", "status", "deployment/mlflow", "--timeout=300s")
    kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{DEPLOYMENT}", "--timeout=300s")
    wait_for_job(TRAIN_JOB)
    smoke_test()
    print(kubectl("-n", NAMESPACE, "get", "pods", "-o", "wide"))


def ready_pods() -> list[str]:
    """Names of the serving pods whose Ready condition is True."""
    listing = kubectl("-n", NAMESPACE, "get", "pods", "-l", SERVING_PODS, "-o", "json")
    pods = json.loads(listing)["items"]
    return [
        pod["metadata"]["name"]
        for pod in pods
        if pod["metadata"].get("deletionTimestamp") is None
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
    ]


def scale(replicas: int, timeout: float = 300) -> list[str]:
    """Set the autoscaler's floor to `replicas` (ceiling at least that) and wait for them."""
    if replicas < 1:
        raise ClusterError(f"replicas {replicas} is below 1: the autoscaler needs at least 1")
    require("kubectl")
    hpa = json.loads(kubectl("-n", NAMESPACE, "get", "hpa", DEPLOYMENT, "-o", "json"))
    ceiling = max(replicas, int(hpa["spec"]["maxReplicas"]))
    patch = {"spec": {"minReplicas": replicas, "maxReplicas": ceiling}}
    kubectl("-n", NAMESPACE, "patch", "hpa", DEPLOYMENT, "--type=merge", "-p", json.dumps(patch))
    end = time.monotonic() + timeout
    while len(ready := ready_pods()) < replicas:
        if time.monotonic() > end:
            raise ClusterError(f"only {len(ready)} of {replicas} pods ready after {timeout:.0f}s")
        time.sleep(3)
    print(f"{len(ready)} ready (autoscaler bounds {replicas}..{ceiling}):")
    print(kubectl("-n", NAMESPACE, "get", "pods", "-l", SERVING_PODS, "-o", "wide"))
    return ready


def ensure_metrics_server() -> None:
    """Install metrics-server unless the metrics API is served already; wait until it is ready."""
    try:
        kubectl("get", "apiservice", "v1beta1.metrics.k8s.io")
        print("metrics API present")
        return
    except ClusterError:
        pass
    kubectl("apply", "-f", METRICS_SERVER)
    insecure = [
        {
            "op": "add",
            "path": "/spec/template/spec/containers/0/args/-",
            "value": "--kubelet-insecure-tls",  # kind's kubelets serve self-signed certificates
        }
    ]
    kube_system = ("-n", "kube-system")
    kubectl(
        *kube_system,
        "patch",
        "deployment",
        "metrics-server",
        "--type=json",
        "-p",
        json.dumps(insecure),
    )
    kubectl(*kube_system, "rollout", "status", "deployment/metrics-server", "--timeout=180s")


def wait_for_autoscaler(
    what: str, done: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """Poll the serving autoscaler until `done(hpa)`; return it, or fail naming `what`."""
    end = time.monotonic() + timeout
    while not done(hpa := get_json("hpa", DEPLOYMENT)):
        if time.monotonic() > end:
            status = hpa.get("status", {})
            raise ClusterError(
                f"the autoscaler did not reach {what} within {timeout:.0f}s: "
                f"{status.get('currentReplicas')} current, "
                f"{status.get('desiredReplicas')} desired, metrics {status.get('currentMetrics')}"
            )
        time.sleep(5)
    return hpa


def replicas(hpa: dict[str, Any]) -> int:
    return int(hpa.get("status", {}).get("currentReplicas", 0))


def cpu_utilization(hpa: dict[str, Any]) -> int | None:
    """The CPU utilization the autoscaler last measured (% of requests), None before metrics."""
    for metric in hpa.get("status", {}).get("currentMetrics") or []:
        current = metric.get("resource", {}).get("current", {})
        if metric.get("resource", {}).get("name") == "cpu" and "averageUtilization" in current:
            return int(current["averageUtilization"])
    return None


def autoscale(images: dict[str, str], up_timeout: float = 300, down_timeout: float = 600) -> None:
    """Show the autoscaler at work: an in-cluster load Job drives it above its floor and back."""
    require("kubectl")
    ensure_metrics_server()
    spec = get_json("hpa", DEPLOYMENT)["spec"]
    floor, ceiling = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
    if floor >= ceiling:
        raise ClusterError(f"the autoscaler's floor {floor} is its ceiling: `scale` it lower first")
    wait_for_autoscaler("CPU metrics", lambda h: cpu_utilization(h) is not None, 300)
    wait_for_autoscaler(f"its floor of {floor}", lambda h: replicas(h) == floor, down_timeout)
    kubectl("-n", NAMESPACE, "delete", "job", LOAD_JOB, "--ignore-not-found")
    kubectl("apply", "-k", str(write_kustomization(images, pull_secret=False, source=LOAD)))
    try:
        hpa = wait_for_autoscaler(
            f"more than {floor} replicas", lambda h: replicas(h) > floor, up_timeout
        )
        print(
            f"under load: {replicas(hpa)} replicas at {cpu_utilization(hpa)}% CPU "
            f"(floor {floor}, ceiling {ceiling})"
        )
    except ClusterError as error:
        raise ClusterError(
            f"{error}; load job: {job_outcome(get_json('job', LOAD_JOB)) or 'running'}"
        ) from None
    finally:
        kubectl("-n", NAMESPACE, "delete", "job", LOAD_JOB, "--ignore-not-found", "--wait=false")
    wait_for_autoscaler(f"its floor of {floor} again", lambda h: replicas(h) == floor, down_timeout)
    print(f"load gone: back to {floor} replicas")


def undeploy() -> None:
    """Delete the kind cluster (and with it everything deployed)."""
    require("kind")
    if CLUSTER not in run("kind", "get", "clusters").split():
        print(f"no kind cluster {CLUSTER!r}: nothing to remove")
        return
    run("kind", "delete", "cluster", "--name", CLUSTER)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("deploy", help="apply the kind overlay and smoke-test it")
    up.add_argument("--image", action="append", default=[], metavar="NAME=REF", required=True)
    up.add_argument("--load", action="store_true", help="kind load docker-image each REF")
    up.add_argument(
        "--pull-secret",
        action="store_true",
        help="pull with REGISTRY_SERVER/USERNAME/PASSWORD credentials",
    )
    up.add_argument(
        "--no-create",
        dest="create",
        action="store_false",
        help="use an existing cluster (e.g. made by helm/kind-action)",
    )
    count = commands.add_parser("scale", help="set the replica floor and wait for N ready pods")
    count.add_argument("replicas", type=int)
    commands.add_parser("smoke", help="predict through a port-forward to the Service")
    load = commands.add_parser(
        "autoscale", help="install metrics-server, load the Service, watch the autoscaler"
    )
    load.add_argument("--image", action="append", default=[], metavar="NAME=REF", required=True)
    commands.add_parser("undeploy", help="delete the kind cluster")
    args = parser.parse_args(argv)
    try:
        if args.command == "deploy":
            deploy(parse_images(args.image), args.load, args.pull_secret, args.create)
        elif args.command == "scale":
            scale(args.replicas)
        elif args.command == "smoke":
            require("kubectl")
            smoke_test()
        elif args.command == "autoscale":
            autoscale(parse_images(args.image))
        else:
            undeploy()
    except (ClusterError, OSError, subprocess.SubprocessError) as error:
        # Refused connections, timeouts, a kubectl that hangs: one line, no traceback.
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
