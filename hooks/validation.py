"""Rules for cookiecutter answers, kept out of the hooks so tests can import them.

Each check returns None when the answer is fine, or one line that names the
answer, the value and the rule it breaks.
"""

from __future__ import annotations

import importlib
import json
import keyword
import logging
import re
import sys
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cookiecutter.exceptions import FailedHookException

from hooks import formats, locked_imports

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# OCI distribution spec: path components separated by '/', each lowercase
# alphanumerics joined by '.', '_', '__' or runs of '-'.
OCI_COMPONENT = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$")
# A registry host may carry a port and is the first component when it has a '.' or ':'
# or is 'localhost'.
REGISTRY_HOST = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?(:[0-9]+)?$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
# Whole numbers as YAML and the API read them: ASCII digits, no sign, '_' or leading zero
# (YAML 1.1 reads 010 as octal 8).
WHOLE_NUMBER = re.compile(r"^[1-9][0-9]*$")
# Our ceiling, far inside the API's int32: more pods than a template default should allow.
MAX_REPLICAS = 1000
# The slug names the kind cluster, whose node `<slug>-control-plane` carries its own name
# in the `kubernetes.io/hostname` label, and the training Job `<slug>-train` (and its
# `job-name` label): every label value and DNS label fits in 63 characters.
DERIVED_SUFFIXES = ("-control-plane", "-train")
MAX_SLUG = 63 - max(len(suffix) for suffix in DERIVED_SUFFIXES)
# Docker allows 255; the manifests name `<registry>/<image_name>` on one line, which the
# YAML lint (`nox -s manifests`) wants within 160 columns.
MAX_IMAGE_REFERENCE = 128
# Namespaces the cluster itself owns.
RESERVED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
# Answers picked from a list. Plain strings in cookiecutter.json (not lists), because
# cookiecutter refuses an unknown list value with a traceback before any rule runs.
CHOICES: dict[str, tuple[str, ...]] = {
    "python_version": ("3.13", "3.12", "3.11"),
    "task": ("classification", "regression"),
    "model": ("logistic_regression", "random_forest", "hist_gradient_boosting"),
    "license": ("MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary"),
}
FREE_TEXT = ("project_name", "description", "author_name", "author_email")
# cookiecutter renders answers given on the command line or in a config file as Jinja.
JINJA_OPENERS = ("{{", "{%", "{#")
# Controls (newline, tab, NUL, DEL, ...), lone surrogates, line and paragraph separators:
# no file format keeps them on one line.
NOT_ONE_LINE = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _dns_label(answer: str, value: str) -> str | None:
    if len(value) > 63 or not DNS_LABEL.match(value):
        return (
            f"{answer} {value!r} is not a DNS-1123 label: use lowercase letters, "
            "digits and '-', start with a letter, end with a letter or digit, at most 63 characters"
        )
    return None


def check_no_jinja(answer: str, value: str) -> str | None:
    opener = next((o for o in JINJA_OPENERS if o in value), None)
    if opener:
        return (
            f"{answer} {value!r} contains {opener!r}, which cookiecutter would run as Jinja: "
            "leave out '{{', '{%' and '{#'"
        )
    return None


def check_free_text(answer: str, value: str) -> str | None:
    """One line of printable text; everything else is escaped where it lands (formats.py)."""
    bad = next((c for c in value if unicodedata.category(c) in NOT_ONE_LINE), None)
    if bad is not None:
        return (
            f"{answer} {value!r} contains the control character U+{ord(bad):04X}: "
            "use one line of printable text"
        )
    if answer == "project_name" and not value.strip():
        return "project_name is empty: name the project"
    return check_no_jinja(answer, value)


def check_slug(value: str) -> str | None:
    if len(value) > MAX_SLUG and DNS_LABEL.match(value):
        return (
            f"project_slug {value!r} is {len(value)} characters, over {MAX_SLUG}: names derived "
            f"from it ({', '.join('<slug>' + s for s in DERIVED_SUFFIXES)}) must fit in 63"
        )
    return _dns_label("project_slug", value)


def check_package(value: str) -> str | None:
    if not value.isidentifier() or not value.isascii():
        return (
            f"package_name {value!r} is not a Python identifier: "
            "use letters, digits and '_', not starting with a digit"
        )
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        return f"package_name {value!r} is a Python keyword: choose another name"
    if value in sys.stdlib_module_names or value in {"test", "tests"}:
        return f"package_name {value!r} would shadow the module of that name: choose another name"
    owner = locked_imports.owner_of(value)
    if owner:
        return (
            f"package_name {value!r} would shadow the module of that name installed by "
            f"{owner}, a locked dependency: choose another name"
        )
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
    _, colon, port = host.partition(":")
    if colon and not 1 <= int(port) <= 65535:
        return f"image_registry {value!r} has port {port}: use a port from 1 to 65535"
    return None


def check_image_reference(registry: str, image_name: str) -> str | None:
    longest = f"{registry}/{image_name}-train"
    if len(longest) > MAX_IMAGE_REFERENCE:
        return (
            f"image_name {image_name!r} makes the training image {longest!r} "
            f"{len(longest)} characters: keep image_registry/image_name-train within "
            f"{MAX_IMAGE_REFERENCE}"
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
    if value in RESERVED_NAMESPACES:
        return (
            f"k8s_namespace {value!r} belongs to Kubernetes itself: "
            "use a namespace of the project's own"
        )
    return _dns_label("k8s_namespace", value)


def check_choice(answer: str, value: str) -> str | None:
    options = CHOICES[answer]
    if value not in options:
        return f"{answer} {value!r} is not one of the choices: use {', '.join(options)}"
    return None


def _positive_int(name: str, value: str) -> tuple[int | None, str | None]:
    if value.lstrip("-").isascii() and value.lstrip("-").isdigit() and int(value) < 1:
        return None, f"{name} {value!r} is below 1: use an integer of at least 1"
    if not WHOLE_NUMBER.match(value):
        return None, (
            f"{name} {value!r} is not a whole number: use ASCII digits only, "
            f"no sign, space, '_' or leading zero, from 1 to {MAX_REPLICAS}"
        )
    if int(value) > MAX_REPLICAS:
        return None, f"{name} {value!r} is over {MAX_REPLICAS}: use at most {MAX_REPLICAS}"
    return int(value), None


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
    # Free text first: a bad name makes a bad slug, an echo of the same problem.
    *((name, lambda a, name=name: check_free_text(name, a[name])) for name in FREE_TEXT),
    ("project_slug", lambda a: check_slug(a["project_slug"])),
    ("package_name", lambda a: check_package(a["package_name"])),
    ("author_email", lambda a: check_email(a["author_email"])),
    ("github_owner", lambda a: check_github_owner(a["github_owner"])),
    ("image_registry", lambda a: check_registry(a["image_registry"])),
    ("image_name", lambda a: check_image_name(a["image_name"])),
    ("image_name", lambda a: check_image_reference(a["image_registry"], a["image_name"])),
    ("k8s_namespace", lambda a: check_namespace(a["k8s_namespace"])),
    ("replicas", lambda a: check_replicas(a["replicas"], a["max_replicas"])),
    *((name, lambda a, name=name: check_choice(name, a[name])) for name in CHOICES),
)


def errors(answers: Mapping[str, str]) -> list[str]:
    """Return one line per broken answer, in prompt order."""
    return [message for _, check in CHECKS if (message := check(answers))]


class AnswerRefused(FailedHookException):
    """A bad answer, stopping generation before anything is written.

    A FailedHookException because the cookiecutter CLI prints those as their message
    alone, one line, and exits 1; anything else it shows with a traceback.
    """


def refuse_bad_answers(answers: Mapping[str, object]) -> str:
    """Raise AnswerRefused naming the first broken answer; render as nothing otherwise.

    Only the first is shown: later ones are mostly echoes of it.
    """
    found = errors({key: str(value) for key, value in answers.items()})
    if found:
        _quiet_hook_traceback()
        raise AnswerRefused(f"ERROR: {found[0]}")
    return ""


def _quiet_hook_traceback() -> None:
    """Drop cookiecutter's traceback for the hook failure that a rejected answer causes.

    The error already says what is wrong in one line; the traceback only buries it.
    """

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Stopping generation because pre_gen_project")

    logging.getLogger("cookiecutter.hooks").addFilter(keep)


def _strings(value: object) -> set[str]:
    """Every string in a JSON document."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(k) | _strings(v) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*map(_strings, value))
    return set()


# The template's own Jinja (defaults such as the slug's) is the only Jinja an answer may carry.
TEMPLATE_STRINGS = _strings(
    json.loads(Path(__file__).parent.parent.joinpath("cookiecutter.json").read_text("utf-8"))
)


def _refuse_jinja_answers(from_string: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap Environment.from_string so that an answer is never run as Jinja.

    cookiecutter's `prompt.render_variable` renders every value of the context as a
    template, answers given with --no-input, on the command line or in a config file
    included: `{{ 7*7 }}` becomes 49, `{{` a traceback. Values that are not the template's
    own strings are answers; those carrying Jinja are refused before rendering.
    """

    def guarded(source: Any, *args: Any, **kwargs: Any) -> Any:
        caller = sys._getframe(1)
        if (
            isinstance(source, str)
            and source not in TEMPLATE_STRINGS
            and caller.f_code.co_name == "render_variable"
            and caller.f_globals.get("__name__") == "cookiecutter.prompt"
        ):
            prompting = caller.f_back
            answer = prompting.f_locals.get("key", "an answer") if prompting else "an answer"
            problem = check_no_jinja(str(answer), source)
            if problem:
                raise AnswerRefused(f"ERROR: {problem}")
        return from_string(source, *args, **kwargs)

    return guarded


def _rules_on_disk() -> bytes:
    """The files the rules come from, as they are on disk now."""
    hooks = Path(__file__).parent
    sources = [*sorted(hooks.glob("*.py")), *sorted(hooks.glob("*.json"))]
    return b"\0".join(p.read_bytes() for p in [*sources, hooks.parent / "cookiecutter.json"])


RULES_IMPORTED = _rules_on_disk()


def _take_the_rules_on_disk() -> None:
    """Re-import the rules, filters and template strings if their files changed since import.

    `cruft update` renders the project's template commit and then the newest one in one process,
    from one checkout: without this the newer commit would get the older commit's filters.
    """
    if _rules_on_disk() != RULES_IMPORTED:
        importlib.reload(formats)
        importlib.reload(locked_imports)
        importlib.reload(sys.modules[__name__])  # in place: this module's globals are the new ones


def _load_jinja_extension() -> type:
    """A Jinja extension: the answer rules and the per-format escapes as filters.

    cookiecutter loads it (`_extensions` in cookiecutter.json) with the template folder on
    sys.path. `refuse_bad_answers` runs in cookiecutter.json's last variable, after the last
    prompt and before any folder exists, and again in the pre-generation hook, which is all
    that a `--replay` goes through.
    """
    from jinja2.ext import Extension

    class AnswerRules(Extension):
        def __init__(self, environment):  # type: ignore[no-untyped-def]
            super().__init__(environment)
            _take_the_rules_on_disk()
            environment.filters["refuse_bad_answers"] = refuse_bad_answers
            environment.filters.update(formats.FILTERS)
            environment.from_string = _refuse_jinja_answers(environment.from_string)

    return AnswerRules


AnswerRules = _load_jinja_extension()
