"""kubectl, kind and HTTP from Python for tools/cluster.py: commands echoed, failures raised as
one ClusterError line. Standard library only, as tools/cluster.py.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from tools.project import names

# [tool.mlops] names: the kind cluster is named after the Deployment.
NAMESPACE, CONTEXT = names().namespace, f"kind-{names().deployment}"
INSTALL = {
    "kind": "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "kubectl": "install kubectl: https://kubernetes.io/docs/tasks/tools/#kubectl",
    "docker": "install Docker: https://docs.docker.com/engine/install/",
}
Json = dict[str, Any]


class ClusterError(RuntimeError):
    """A step failed; the message says which and what to do."""


def require(*tools: str) -> None:
    """Fail with one line per missing tool saying how to install it."""
    if missing := [INSTALL[tool] for tool in tools if shutil.which(tool) is None]:
        raise ClusterError("; ".join(missing))


def run(*args: str, stdin: str | None = None) -> str:
    """Run a command, echoing it; raise ClusterError with its output if it fails."""
    print("+", " ".join(args), flush=True)
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise ClusterError(f"{args[0]} {args[1]} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def kubectl(*args: str, namespace: str = NAMESPACE, stdin: str | None = None) -> str:
    return run("kubectl", "--context", CONTEXT, "-n", namespace, *args, stdin=stdin)


def get_json(kind: str, name: str) -> Json:
    return dict(json.loads(kubectl("get", kind, name, "-o", "json")))


def wait_until(what: str, check: Callable[[], Any], timeout: float, every: float = 3) -> Any:
    """Poll `check` until it returns something truthy and return that; else fail: `what`."""
    end = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > end:
            raise ClusterError(f"{what} within {timeout:.0f}s")
        time.sleep(every)
    return found


def wait_for_listener(proc: subprocess.Popen[bytes], port: int, what: str) -> None:
    """Return once `proc` accepts connections on loopback `port`; if it exits, raise its stderr."""
    end = time.monotonic() + 20
    while proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if time.monotonic() > end:
            raise ClusterError(f"nothing listens on port {port} after 20s")
        time.sleep(0.2)
    stderr = proc.stderr.read().decode().strip() if proc.stderr else ""
    raise ClusterError(f"{what} exited {proc.returncode}: {stderr or 'no error output'}")


@contextlib.contextmanager
def port_forward(target: str, port: int) -> Iterator[str]:
    """`kubectl port-forward` to `target` (svc/NAME, pod/NAME) on a free local port; yield its
    base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    forward = ["kubectl", "--context", CONTEXT, "-n", NAMESPACE, "port-forward", target]
    # stdout (a line per connection) is not read, so it must not fill a pipe; stderr is the error.
    proc = subprocess.Popen(  # noqa: S603 - kubectl with our arguments
        [*forward, f"{local}:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_listener(proc, local, f"kubectl port-forward {target}")
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
