"""Deploy, scale and remove the kind overlay (`nox -s deploy/scale/autoscale/undeploy`, CI).

Standard library only (tools/kube.py too): CI runs `python3 -m tools.cluster` with any Python
3.11+. The images go into a kustomization under build/k8s/ wrapping the overlay, so no tracked
file changes.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tools.kube import (
    NAMESPACE,
    ClusterError,
    Json,
    get_json,
    http,
    kubectl,
    port_forward,
    require,
    run,
    wait_until,
)
from tools.project import ROOT, names

# [tool.mlops] names: the kind cluster and the overlay's Jobs are named after the Deployment.
DEPLOYMENT = names().deployment
TRAIN_JOB, LOAD_JOB = f"{DEPLOYMENT}-train", f"{DEPLOYMENT}-load"
SERVING_PODS = f"app.kubernetes.io/name={DEPLOYMENT},app.kubernetes.io/component=serving"
PULL_SECRET = "registry-credentials"  # noqa: S105 - a Secret's name, not a password
# kind has no metrics server; the autoscaler needs one (pinned release, kubelets self-signed).
METRICS_SERVER = (
    "https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.8.1/components.yaml"
)
INSECURE_TLS = (  # a JSON patch: kind's kubelets serve self-signed certificates
    '[{"op": "add", "path": "/spec/template/spec/containers/0/args/-", '
    '"value": "--kubelet-insecure-tls"}]'
)


def parse_images(pairs: Sequence[str]) -> dict[str, str]:
    """`name=ref` pairs -> {name: ref}; the name is the one the manifests use."""
    if bad := [pair for pair in pairs if not all(pair.partition("="))]:
        raise ClusterError(f"--image {bad[0]!r} is not NAME=REF, e.g. my-image=my-image:abc1234")
    return dict(pair.split("=", 1) for pair in pairs)


def image_entry(name: str, ref: str) -> dict[str, str]:
    """A kustomize `images:` entry pinning `name` to `ref` (repo:tag or repo@sha256:...)."""
    repo, at, digest = ref.partition("@")
    if at:
        return {"name": name, "newName": repo, "digest": digest}
    if repo.rfind(":") <= repo.rfind("/"):
        raise ClusterError(f"image {ref!r} has no tag or digest: never deploy an implicit :latest")
    new_name, tag = repo.rsplit(":", 1)
    return {"name": name, "newName": new_name, "newTag": tag}


def write_kustomization(images: dict[str, str], pull_secret: bool, source: Path) -> Path:
    """Wrap `source` with the given images (and pull secret) in build/k8s/<source's name>."""
    directory = ROOT / "build" / "k8s" / source.name
    directory.mkdir(parents=True, exist_ok=True)
    secrets = [{"op": "add", "path": "/imagePullSecrets", "value": [{"name": PULL_SECRET}]}]
    patch = {"target": {"kind": "ServiceAccount"}, "patch": json.dumps(secrets)}
    kustomization = {
        "resources": [os.path.relpath(source, directory)],
        "images": [image_entry(name, ref) for name, ref in images.items()],
        "patches": [patch] if pull_secret else [],
    }  # JSON is YAML: kustomize reads it as is.
    (directory / "kustomization.yaml").write_text(json.dumps(kustomization, indent=2) + "\n")
    return directory


def create_pull_secret() -> None:
    """The namespace, and in it a docker-registry Secret from REGISTRY_SERVER/USERNAME/PASSWORD."""
    variables = [f"REGISTRY_{key}" for key in ("SERVER", "USERNAME", "PASSWORD")]
    if missing := [name for name in variables if name not in os.environ]:
        raise ClusterError(f"--pull-secret needs the environment variable {missing[0]}")
    server, user, password = map(os.environ.get, variables)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = {"auths": {server: {"username": user, "password": password, "auth": auth}}}
    data = {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}
    secret = {"type": "kubernetes.io/dockerconfigjson", "data": data}
    # The namespace first, bare: the overlay's apply adds its Pod Security labels. The password
    # goes through stdin, never on a command line.
    for kind, name, rest in (("Namespace", NAMESPACE, {}), ("Secret", PULL_SECRET, secret)):
        manifest = {**rest, "apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
        kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


def smoke_test(deadline: float = 60) -> None:
    """Through a port-forward: /readyz answers 200 and /predict answers the model's own example."""
    require("kubectl")
    with port_forward(f"svc/{DEPLOYMENT}", 80) as base:
        end = time.monotonic() + deadline
        status, body = 0, "no answer"
        while status != 200:
            if time.monotonic() > end:
                raise ClusterError(
                    f"/readyz did not answer 200 within {deadline:.0f}s: {status} {body}"
                )
            with contextlib.suppress(ClusterError):  # the forward may still be starting
                status, body = http(f"{base}/readyz")
            time.sleep(0 if status == 200 else 1)
        status, body = http(f"{base}/metadata")
        if not (example := json.loads(body).get("example") if status == 200 else None):
            raise ClusterError(
                f"/metadata answered {status} without an input example: {body[:500]}"
            )
        status, body = http(f"{base}/predict", example)
        if status != 200 or "predictions" not in body:
            raise ClusterError(f"/predict answered {status}: {body[:500]}")
        print(f"/predict -> {body[:200]}")


def job_outcome(job: Json) -> str | None:
    """'complete', 'failed: <reason> <message>', or None while the Job still runs."""
    for condition in job.get("status", {}).get("conditions", []):
        if (condition["type"], condition.get("status")) == ("Complete", "True"):
            return "complete"
        if (condition["type"], condition.get("status")) == ("Failed", "True"):
            return f"failed: {condition.get('reason', '')} {condition.get('message', '')}".strip()
    return None


def wait_for_job(name: str, timeout: float = 600) -> None:
    """Wait until the Job completes; fail at once when it fails (`kubectl wait` would not)."""
    what = f"job/{name} neither completed nor failed"
    outcome = wait_until(what, lambda: job_outcome(get_json("job", name)), timeout)
    if outcome != "complete":
        try:
            logs = kubectl("logs", f"job/{name}", "--tail=20").strip()
        except ClusterError as error:
            logs = str(error)
        raise ClusterError(f"job/{name} {outcome}; its last log lines:\n{logs}")
    print(f"job/{name} complete")


def deploy(images: dict[str, str], load: bool, pull_secret: bool, create: bool) -> None:
    """Create the cluster if needed, load images, apply the overlay, wait, smoke-test."""
    require("kind", "kubectl", "docker")
    if create and DEPLOYMENT not in run("kind", "get", "clusters").split():
        config = str(ROOT / "k8s" / "kind-config.yaml")
        run("kind", "create", "cluster", "--config", config, "--wait", "180s")
    if load:
        run("kind", "load", "docker-image", "--name", DEPLOYMENT, *images.values())
    overlay = write_kustomization(images, pull_secret, ROOT / "k8s" / "overlays" / "kind")
    if pull_secret:
        create_pull_secret()
    # A Job's pod template is immutable: replace the previous training run.
    kubectl("delete", "job", TRAIN_JOB, "--ignore-not-found")
    kubectl("apply", "-k", str(overlay))
    for deployment in ("mlflow", DEPLOYMENT):
        kubectl("rollout", "status", f"deployment/{deployment}", "--timeout=300s")
    wait_for_job(TRAIN_JOB)
    smoke_test()
    print(kubectl("get", "pods", "-o", "wide"))


def scale(replicas: int, timeout: float = 300) -> None:
    """Set the autoscaler's floor to `replicas` (ceiling at least that) and wait for them."""
    if replicas < 1:
        raise ClusterError(f"replicas {replicas} is below 1: the autoscaler needs at least 1")
    require("kubectl")
    ceiling = max(replicas, int(get_json("hpa", DEPLOYMENT)["spec"]["maxReplicas"]))
    bounds = {"spec": {"minReplicas": replicas, "maxReplicas": ceiling}}
    kubectl("patch", "hpa", DEPLOYMENT, "--type=merge", "-p", json.dumps(bounds))

    def ready() -> int | None:  # the Deployment counts Ready pods that are not terminating
        count = int(get_json("deployment", DEPLOYMENT)["status"].get("readyReplicas", 0))
        return count if count >= replicas else None

    count = wait_until(f"not all {replicas} pods were ready", ready, timeout)
    print(f"{count} ready (autoscaler bounds {replicas}..{ceiling}):")
    print(kubectl("get", "pods", "-l", SERVING_PODS, "-o", "wide"))


def ensure_metrics_server() -> None:
    """Install metrics-server unless the metrics API is served already; wait until it is ready."""
    try:
        kubectl("get", "apiservice", "v1beta1.metrics.k8s.io")
        print("metrics API present")
    except ClusterError:
        system = "kube-system"
        kubectl("apply", "-f", METRICS_SERVER, namespace=system)
        kubectl(
            "patch", "deploy/metrics-server", "--type=json", "-p", INSECURE_TLS, namespace=system
        )
        kubectl("rollout", "status", "deploy/metrics-server", "--timeout=180s", namespace=system)


def replicas(hpa: Json) -> int:
    return int(hpa.get("status", {}).get("currentReplicas", 0))


def cpu_utilization(hpa: Json) -> int | None:
    """The CPU utilization the autoscaler last measured (% of requests), None before metrics."""
    for metric in hpa.get("status", {}).get("currentMetrics") or []:
        current = metric.get("resource", {}).get("current", {})
        if metric.get("resource", {}).get("name") == "cpu" and "averageUtilization" in current:
            return int(current["averageUtilization"])
    return None


def wait_for_autoscaler(what: str, done: Callable[[Json], bool], timeout: float = 600) -> Json:
    """Poll the serving autoscaler until `done(hpa)`; return it, or fail naming `what`."""
    end = time.monotonic() + timeout
    while not done(hpa := get_json("hpa", DEPLOYMENT)):
        if time.monotonic() > end:
            now = hpa.get("status", {})
            counts = f"{now.get('currentReplicas')} current, {now.get('desiredReplicas')} desired"
            raise ClusterError(
                f"the autoscaler did not reach {what} within {timeout:.0f}s: {counts}, "
                f"metrics {now.get('currentMetrics')}"
            )
        time.sleep(5)
    return hpa


def autoscale(images: dict[str, str]) -> None:
    """Show the autoscaler at work: an in-cluster load Job drives it above its floor and back."""
    require("kubectl")
    ensure_metrics_server()
    spec = get_json("hpa", DEPLOYMENT)["spec"]
    floor, ceiling = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
    if floor >= ceiling:
        raise ClusterError(f"the autoscaler's floor {floor} is its ceiling: `scale` it lower first")
    wait_for_autoscaler("CPU metrics", lambda hpa: cpu_utilization(hpa) is not None, 300)
    wait_for_autoscaler(f"its floor of {floor}", lambda hpa: replicas(hpa) == floor)
    kubectl("delete", "job", LOAD_JOB, "--ignore-not-found")
    kubectl("apply", "-k", str(write_kustomization(images, False, ROOT / "k8s" / "hpa-load")))
    try:
        hpa = wait_for_autoscaler(f"more than {floor} replicas", lambda h: replicas(h) > floor, 300)
        usage = f"{replicas(hpa)} replicas at {cpu_utilization(hpa)}% CPU"
        print(f"under load: {usage} (floor {floor}, ceiling {ceiling})")
    except ClusterError as error:
        outcome = job_outcome(get_json("job", LOAD_JOB)) or "running"
        raise ClusterError(f"{error}; load job: {outcome}") from None
    finally:
        kubectl("delete", "job", LOAD_JOB, "--ignore-not-found", "--wait=false")
    wait_for_autoscaler(f"its floor of {floor} again", lambda h: replicas(h) == floor)
    print(f"load gone: back to {floor} replicas")


def undeploy() -> None:
    """Delete the kind cluster (and with it everything deployed)."""
    require("kind")
    if DEPLOYMENT in run("kind", "get", "clusters").split():
        run("kind", "delete", "cluster", "--name", DEPLOYMENT)
    else:
        print(f"no kind cluster {DEPLOYMENT!r}: nothing to remove")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    command = parser.add_subparsers(dest="command", required=True).add_parser
    deploy_ = command("deploy", help="apply the kind overlay and smoke-test it")
    command("scale", help="set the replica floor, wait for N ready pods").add_argument(
        "replicas", type=int
    )
    command("smoke", help="predict through a port-forward to the Service")
    autoscale_ = command("autoscale", help="install metrics-server, load the Service, watch")
    command("undeploy", help="delete the kind cluster")
    for sub in (deploy_, autoscale_):
        sub.add_argument("--image", action="append", metavar="NAME=REF", required=True)
    flag = deploy_.add_argument
    flag("--load", action="store_true", help="kind load docker-image each REF")
    flag("--pull-secret", action="store_true", help="with REGISTRY_SERVER/USERNAME/PASSWORD")
    flag("--no-create", dest="create", action="store_false", help="use an existing cluster")
    args = parser.parse_args(argv)
    try:
        if args.command == "deploy":
            deploy(parse_images(args.image), args.load, args.pull_secret, args.create)
        elif args.command == "autoscale":
            autoscale(parse_images(args.image))
        elif args.command == "scale":
            scale(args.replicas)
        else:
            {"smoke": smoke_test, "undeploy": undeploy}[args.command]()
    except (ClusterError, OSError, subprocess.SubprocessError) as error:
        # Refused connections, timeouts, a kubectl that hangs: one line, no traceback.
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
