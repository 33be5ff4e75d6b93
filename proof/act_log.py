"""What an act run did, read from its `--json` log: each job's result and its steps' results."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Job:
    name: str  # as act prints it: the job's name, matrix values expanded
    steps: list[tuple[str, str]] = field(default_factory=list)  # (stage and step, result)
    result: str = ""  # success / failure, once act finished the job

    def first_failure(self) -> str | None:
        return next((step for step, result in self.steps if result == "failure"), None)

    def ran(self, step: str) -> str | None:
        """The result of the Main stage of `step`, None when it never ran."""
        return dict(self.steps).get(f"Main {step}")


@dataclass
class Outcome:
    returncode: int
    jobs: dict[str, Job]
    lines: list[str]  # the human log lines, for a failing test's report

    @classmethod
    def read(cls, log: Path, returncode: int) -> Outcome:
        jobs: dict[str, Job] = {}
        lines: list[str] = []
        for raw in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                lines.append(raw)
                continue
            # "CI act-1a2b3c4d/nox -s lint-1   ": act pads the name and prefixes the workflow.
            name = str(entry.get("job", "")).strip().partition("/")[2]
            message = str(entry.get("msg", "")).rstrip()
            lines.append(f"[{name}] {message}" if name else message)
            if not name:
                continue
            job = jobs.setdefault(name, Job(name))
            if "stepResult" in entry and "step" in entry:
                job.steps.append((f"{entry.get('stage', '')} {entry['step']}", entry["stepResult"]))
            if "jobResult" in entry:
                job.result = entry["jobResult"]
        return cls(returncode, jobs, lines)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and all(j.result == "success" for j in self.jobs.values())

    def summary(self) -> str:
        rows = [f"act exited {self.returncode}"]
        for job in self.jobs.values():
            failed = job.first_failure()
            where = f" at {failed}" if failed else ""
            rows.append(f"  {job.name}: {job.result or 'unfinished'}{where}")
        return "\n".join(rows)
