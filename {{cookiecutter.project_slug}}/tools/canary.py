"""Roll out a new serving image as a canary beside the stable one, and promote it or roll it
back by what its own /metrics say (`nox -s canary`, the delivery workflow's canary run).

The canary is the stable Deployment as the cluster holds it (nothing retyped) under the name
<deployment>-canary, with one more label, `track: canary`, and the new image. The Service selects
both by name and component, so the canary takes a share of the traffic by its share of the pods.
tools/canary_gate.py then judges what the canary pods answered during a watch against the stable
pods. Standard library only, as tools/cluster.py.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence

from tools.canary_gate import MIN_REQUESTS, decision_line, gate
from tools.cluster import DEPLOYMENT, LOAD_JOB, SERVING_PODS, parse_images, write_kustomization
from tools.kube import ClusterError, Json, get_json, kubectl, port_forward, require, run
from tools.project import ROOT, names

TRACK = "track"
SERVE_CONTAINER = "serve"  # the serving container's name in k8s/base/deployment.yaml
SERVING_PORT = 8000


def canary_name(deployment: str) -> str:
    return f"{deployment}-canary"


def canary_deployment(stable: Json, image: str, replicas: int) -> Json:
    """The stable Deployment as a canary: its own name and `track` label, the new image."""
    spec = copy.deepcopy(stable["spec"])
    spec["replicas"] = replicas
    spec["selector"].setdefault("matchLabels", {})[TRACK] = "canary"
    template = spec["template"]
    template["metadata"].pop("creationTimestamp", None)
    template["metadata"].setdefault("labels", {})[TRACK] = "canary"
    serve = [c for c in template["spec"]["containers"] if c["name"] == SERVE_CONTAINER]
    if not serve:
        raise ClusterError(f"the stable Deployment has no container named {SERVE_CONTAINER!r}")
    serve[0]["image"] = image
    metadata = stable["metadata"]
    labels = {**metadata.get("labels", {}), TRACK: "canary"}
    named = {"name": canary_name(metadata["name"]), "labels": labels}
    if "namespace" in metadata:
        named["namespace"] = metadata["namespace"]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": named, "spec": spec}


# ---- in the cluster ----------------------------------------------------------------------------
def is_ready(pod: Json) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return ready and not pod["metadata"].get("deletionTimestamp")


def ready_pods(selector: str) -> list[str]:
    """The names of the Ready pods matching `selector`, none terminating."""
    found = json.loads(kubectl("get", "pods", "-l", selector, "-o", "json"))["items"]
    if not (names := [pod["metadata"]["name"] for pod in found if is_ready(pod)]):
        raise ClusterError(f"no Ready pod matches {selector}")
    return names


@contextlib.contextmanager
def forwarded(pods: Sequence[str]) -> Iterator[list[str]]:
    """A port-forward to each pod's server; yield their base URLs."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(port_forward(f"pod/{pod}", SERVING_PORT)) for pod in pods]


@contextlib.contextmanager
def clients(images: dict[str, str], wanted: bool) -> Iterator[None]:
    """The autoscaler demo's load Job as the Service's clients while the gate watches (kind
    has no traffic of its own; a production cluster has)."""
    if not wanted:
        yield
        return
    kubectl("delete", "job", LOAD_JOB, "--ignore-not-found")
    kubectl("apply", "-k", str(write_kustomization(images, False, ROOT / "k8s" / "hpa-load")))
    try:
        yield
    finally:
        kubectl("delete", "job", LOAD_JOB, "--ignore-not-found", "--wait=false")


def watch_in_cluster(images: dict[str, str], watch: float, with_clients: bool) -> tuple[bool, str]:
    """The gate over port-forwards to every stable and canary pod."""
    stable = ready_pods(f"{SERVING_PODS},{TRACK}!=canary")
    canary = ready_pods(f"{SERVING_PODS},{TRACK}=canary")
    print(f"watching {len(canary)} canary pod(s) beside {len(stable)} stable for {watch:.0f}s")
    with (
        forwarded(stable) as stable_urls,
        forwarded(canary) as canary_urls,
        clients(images, with_clients),
    ):
        return gate(stable_urls, canary_urls, watch, MIN_REQUESTS)


def roll_out(args: argparse.Namespace) -> tuple[bool, str]:
    """Apply the canary, judge it, then promote it or roll it back: (promoted?, why)."""
    require("kubectl")
    images, canary = parse_images(args.image), canary_name(DEPLOYMENT)
    if not (image := images.get(names().image)):
        raise ClusterError(f"--image {names().image}=REF is needed: the serving image to try")
    if args.load:
        require("kind")
        run("kind", "load", "docker-image", "--name", DEPLOYMENT, *images.values())
    manifest = canary_deployment(get_json("deployment", DEPLOYMENT), image, args.replicas)
    kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    try:
        kubectl("rollout", "status", f"deployment/{canary}", "--timeout=180s")
        promote, why = watch_in_cluster(images, args.watch, args.clients)
    except ClusterError as error:  # never ready, or its pods stopped answering
        promote, why = False, f"the canary failed: {error}"
    if promote:  # the stable pods take the new image (maxUnavailable 0) before the canary goes
        kubectl("set", "image", f"deployment/{DEPLOYMENT}", f"{SERVE_CONTAINER}={image}")
        kubectl("rollout", "status", f"deployment/{DEPLOYMENT}", "--timeout=300s")
    kubectl("delete", "deployment", canary, "--ignore-not-found")
    return promote, why


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    command = parser.add_subparsers(dest="command", required=True).add_parser
    rollout = command("run", help="on the kind cluster: apply, watch, promote or roll back")
    option = rollout.add_argument
    option("--image", action="append", metavar="NAME=REF", required=True)
    option("--load", action="store_true", help="kind load docker-image each REF first")
    option("--no-clients", dest="clients", action="store_false", help="judge real traffic only")
    render = command("render", help="the canary of the Deployment (JSON) on stdin, as JSON")
    render.add_argument("--image", required=True, metavar="REF")
    watch = command("gate", help="judge canary pods against stable pods over a watch")
    watch.add_argument("--stable", action="append", required=True, metavar="URL")
    watch.add_argument("--canary", action="append", required=True, metavar="URL")
    watch.add_argument("--min-requests", type=int, default=MIN_REQUESTS)
    for sub in (rollout, render):
        sub.add_argument("--replicas", type=int, default=1, help="canary pods (default 1)")
    for sub in (rollout, watch):
        sub.add_argument("--watch", type=float, default=120, metavar="SECONDS")
    args = parser.parse_args(argv)
    try:
        if args.command == "render":
            print(json.dumps(canary_deployment(json.load(sys.stdin), args.image, args.replicas)))
            return 0
        if args.command == "gate":
            promote, why = gate(args.stable, args.canary, args.watch, args.min_requests)
        else:
            promote, why = roll_out(args)
    except (ClusterError, OSError, ValueError, KeyError, subprocess.SubprocessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(decision_line(promote, why))
    return 0 if promote else 1


if __name__ == "__main__":
    sys.exit(main())
