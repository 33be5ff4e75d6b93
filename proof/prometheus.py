"""A real Prometheus scraping a bake's serving container, and the queries a bake asks of it.

Debian's `prometheus` binary runs on the host (nothing can be pulled): one scrape job named as
the bake's rules select it, every second, with the bake's k8s/monitoring/rules.yaml loaded and
evaluated every second. The queries come from the bake's own files: each rule's expression and
each dashboard panel's, its `$job` variable set.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from proof.waiting import free_port, wait_until_ready

# The recorded series the rules write: `level:metric:operations`, as Prometheus names them.
RECORDED = r"[a-z_]+:[a-z_]+:[a-z0-9_]+"


def binary() -> str:
    """The prometheus server (Debian's package: `apt-get install prometheus`)."""
    found = shutil.which("prometheus")
    if found is None:
        raise FileNotFoundError("no prometheus on PATH (apt-get install prometheus)")
    return found


@dataclass(frozen=True)
class Prometheus:
    """A running server's API."""

    url: str

    def get(self, path: str, **params: str) -> Any:
        """`GET /api/v1/<path>`'s data; an error status raises with Prometheus' reason."""
        query = urllib.parse.urlencode(params)
        # S310: the loopback URL of a server this process started.
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as answer:  # noqa: S310
            body = json.load(answer)
        if body["status"] != "success":
            raise RuntimeError(f"{path} {params}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector `expr` evaluates to now."""
        result: list[dict[str, Any]] = self.get("query", query=expr)["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """Each series of `expr` between `start` and `end` (Unix seconds), every `step` s."""
        result: list[dict[str, Any]] = self.get(
            "query_range", query=expr, start=str(start), end=str(end), step=str(step)
        )["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its health and last error, as the server evaluates them."""
        groups = self.get("rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]


@contextmanager
def running(rules: Path, job: str, target: str, folder: Path) -> Iterator[Prometheus]:
    """Prometheus scraping `target` (host:port) as `job` every second, `rules` loaded."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                binary(),
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(
            f"{url}/-/ready",
            timeout=60,
            alive=lambda: process.poll() is None,
            details=lambda: log.read_text(errors="replace")[-3000:],
        )
        yield Prometheus(url)
    finally:
        process.terminate()
        process.wait(timeout=30)


def rule_expressions(rules: Path) -> dict[str, str]:
    """Each rule's expression by its name (the series it records, or its alert)."""
    groups = yaml.safe_load(rules.read_text())["groups"]
    return {
        rule.get("record") or rule["alert"]: rule["expr"]
        for group in groups
        for rule in group["rules"]
    }


def panel_queries(dashboard: Path, variables: dict[str, str]) -> dict[str, list[str]]:
    """Each dashboard panel's queries by its title, with `$name` variables set."""
    found: dict[str, list[str]] = {}
    for panel in json.loads(dashboard.read_text())["panels"]:
        exprs = [target["expr"] for target in panel.get("targets", [])]
        for name, value in variables.items():
            exprs = [expr.replace(f"${name}", value) for expr in exprs]
        found[panel["title"]] = exprs
    return found
