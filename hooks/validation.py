"""Rules for cookiecutter answers, kept out of the hooks so tests can import them.

Each check returns None when the answer is fine, or one line that names the
answer, the value and the rule it breaks.
"""

from __future__ import annotations

import keyword
import logging
import re
import sys
from collections.abc import Callable, Mapping

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# OCI distribution spec: path components separated by '/', each lowercase
# alphanumerics joined by '.', '_', '__' or runs of '-'.
OCI_COMPONENT = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$")
# A registry host may carry a port and is the first component when it has a '.' or ':'
# or is 'localhost'.
REGISTRY_HOST = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?(:[0-9]+)?$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")


def _dns_label(answer: str, value: str) -> str | None:
    if len(value) > 63 or not DNS_LABEL.match(value):
        return (
            f"{answer} {value!r} is not a DNS-1123 label: use lowercase letters, "
            "digits and '-', start with a letter, end with a letter or digit, at most 63 characters"
        )
    return None


def check_slug(value: str) -> str | None:
    return _dns_label("project_slug", value)


def check_package(value: str) -> str | None:
    if not value.isidentifier() or not value.isascii():
        return (
            f"package_name {value!r} is not a Python identifier: "
            "use letters, digits and '_', not starting with a digit"
        )
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        return f"package_name {value!r} is a Python keyword: choose another name"
    if value in sys.stdlib_module_names or value in {"test", "tests", "mlflow", "sklearn"}:
        return f"package_name {value!r} would shadow the module of that name: choose another name"
    if value != value.lower():
        return f"package_name {value!r} should be lowercase (PEP 8): use {value.lower()!r}"
    return None


def check_image_name(value: str) -> str | None:
    parts = value.split("/")
    if len(value) > 255 or not all(OCI_COMPONENT.match(p) for p in parts):
        return (
            f"image_name {value!r} is not a valid OCI repository name: use lowercase letters, "
            "digits and single separators ('.', '_', '__', '-'), components joined by '/'"
        )
    return None


def check_registry(value: str) -> str | None:
    host, _, path = value.partition("/")
    bad_path = path and not all(OCI_COMPONENT.match(p) for p in path.split("/"))
    if not REGISTRY_HOST.match(host) or bad_path:
        return (
            f"image_registry {value!r} is not a registry reference: "
            "use HOST[:PORT][/lowercase/path], e.g. 'ghcr.io/my-org' or 'localhost:5000'"
        )
    return None


def check_email(value: str) -> str | None:
    if not EMAIL.match(value):
        return f"author_email {value!r} is not an email address: use the form name@example.com"
    return None


def check_github_owner(value: str) -> str | None:
    if not GITHUB_OWNER.match(value):
        return (
            f"github_owner {value!r} is not a GitHub user or organisation name: "
            "use letters, digits and single '-' between them, at most 39 characters"
        )
    return None


def check_namespace(value: str) -> str | None:
    return _dns_label("k8s_namespace", value)


def _positive_int(name: str, value: str) -> tuple[int | None, str | None]:
    try:
        number = int(str(value).strip())
    except ValueError:
        return None, f"{name} {value!r} is not a whole number: use an integer of at least 1"
    if number < 1:
        return None, f"{name} {value!r} is below 1: use an integer of at least 1"
    return number, None


def check_replicas(replicas: str, max_replicas: str) -> str | None:
    low, error = _positive_int("replicas", replicas)
    if error:
        return error
    high, error = _positive_int("max_replicas", max_replicas)
    if error:
        return error
    if low is not None and high is not None and high < low:
        return (
            f"max_replicas {max_replicas!r} is below replicas {replicas!r}: "
            f"use a number of at least {low}"
        )
    return None


CHECKS: tuple[tuple[str, Callable[[Mapping[str, str]], str | None]], ...] = (
    ("project_slug", lambda a: check_slug(a["project_slug"])),
    ("package_name", lambda a: check_package(a["package_name"])),
    ("author_email", lambda a: check_email(a["author_email"])),
    ("github_owner", lambda a: check_github_owner(a["github_owner"])),
    ("image_registry", lambda a: check_registry(a["image_registry"])),
    ("image_name", lambda a: check_image_name(a["image_name"])),
    ("k8s_namespace", lambda a: check_namespace(a["k8s_namespace"])),
    ("replicas", lambda a: check_replicas(a["replicas"], a["max_replicas"])),
)


def errors(answers: Mapping[str, str]) -> list[str]:
    """Return one line per broken answer, in prompt order."""
    return [message for _, check in CHECKS if (message := check(answers))]


def _quiet_hook_traceback() -> None:
    """Drop cookiecutter's traceback for the hook failure that a rejected answer causes.

    The hook has already said what is wrong in one line; the traceback only buries it.
    """

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Stopping generation because pre_gen_project")

    logging.getLogger("cookiecutter.hooks").addFilter(keep)


def _load_jinja_extension() -> type:
    """A Jinja extension giving templates the `answer_errors` filter.

    cookiecutter loads it (`_extensions` in cookiecutter.json) with the template
    folder on sys.path, so the pre-generation hook is rendered with the verdict
    already in it and needs no import of its own.
    """
    from jinja2.ext import Extension

    def answer_errors(answers: Mapping[str, object]) -> list[str]:
        found = errors({key: str(value) for key, value in answers.items()})
        if found:
            _quiet_hook_traceback()
        return found

    class AnswerRules(Extension):
        def __init__(self, environment):  # type: ignore[no-untyped-def]
            super().__init__(environment)
            environment.filters["answer_errors"] = answer_errors

    return AnswerRules


AnswerRules = _load_jinja_extension()
