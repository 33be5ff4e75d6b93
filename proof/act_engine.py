"""What an act run leaves on the shared Docker engine and the local registry, found by its id.

act names its job containers and volumes `act-<workflow name>-<job>-<hash>`, and the run's
workflow names carry the run id; the images it loads and pushes live under
`127.0.0.1:5000/<run id>/`. `cleanup` removes exactly those, and returns what it could not.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

REGISTRY = "127.0.0.1:5000"
MANIFESTS = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


def docker(*args: str) -> list[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    return [line for line in result.stdout.splitlines() if line.strip()]


def containers(run_id: str) -> list[str]:
    return docker("ps", "-a", "--filter", f"name={run_id}", "--format", "{{.Names}}")


def volumes(run_id: str) -> list[str]:
    return docker("volume", "ls", "--filter", f"name={run_id}", "--format", "{{.Name}}")


def images(prefixes: list[str]) -> list[str]:
    listed = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
    return [ref for ref in listed if ref.startswith(tuple(prefixes))]


def registry_tags(repository: str) -> dict[str, str]:
    """`tag: digest` of a repository of the local registry (empty when it has none)."""
    try:
        url = f"http://{REGISTRY}/v2/{repository}/tags/list"
        with urllib.request.urlopen(url, timeout=10) as answer:
            tags = json.load(answer).get("tags") or []
    except urllib.error.HTTPError:
        return {}
    found = {}
    for tag in tags:
        head = urllib.request.Request(
            f"http://{REGISTRY}/v2/{repository}/manifests/{tag}",
            method="HEAD",
            headers={"Accept": MANIFESTS},
        )
        try:
            with urllib.request.urlopen(head, timeout=10) as answer:  # noqa: S310
                found[tag] = answer.headers["Docker-Content-Digest"]
        except urllib.error.HTTPError:  # listed, but its manifest is deleted already
            continue
    return found


def delete_manifests(repository: str) -> None:
    for digest in set(registry_tags(repository).values()):
        url = f"http://{REGISTRY}/v2/{repository}/manifests/{digest}"
        request = urllib.request.Request(url, method="DELETE")
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass


def leftovers(run_id: str, repositories: list[str], image_prefixes: list[str]) -> list[str]:
    found = [f"container {n}" for n in containers(run_id)]
    found += [f"volume {n}" for n in volumes(run_id)]
    found += [f"image {ref}" for ref in images(image_prefixes)]
    found += [f"registry {r}:{t}" for r in repositories for t in registry_tags(r)]
    return found


def cleanup(run_id: str, repositories: list[str], image_prefixes: list[str]) -> list[str]:
    """Remove the run's containers, volumes, images and registry manifests; return leftovers.

    `repositories` are registry repositories (`<run id>/ml-service`); `image_prefixes` the
    local image names the run made (its registry path, and the bake's own `name:sha-<head>`).
    """
    for name in containers(run_id):
        docker("rm", "--force", "--volumes", name)
    for name in volumes(run_id):
        docker("volume", "rm", "--force", name)
    refs = images(image_prefixes)
    if refs:
        docker("image", "rm", "--force", *refs)
    for repository in repositories:
        delete_manifests(repository)
    return leftovers(run_id, repositories, image_prefixes)
