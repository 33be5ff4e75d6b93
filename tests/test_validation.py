"""Answer rules in hooks/validation.py, checked directly."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from hooks import locked_imports, validation
from tests.conftest import TEMPLATE


@pytest.mark.parametrize("slug", ["ml-service", "a", "model2", "x" * 49, "fraud-scorer-v2"])
def test_good_slugs_pass(slug: str) -> None:
    assert validation.check_slug(slug) is None


@pytest.mark.parametrize(
    "slug",
    ["", "ML-Service", "2fast", "-lead", "trail-", "under_score", "dot.ted", "x" * 64, "sp ace"],
)
def test_bad_slugs_name_the_rule(slug: str) -> None:
    message = validation.check_slug(slug)
    assert message is not None
    assert message.startswith(f"project_slug {slug!r}")
    assert "DNS-1123" in message or f"over {validation.MAX_SLUG}" in message


@pytest.mark.parametrize("name", ["ml_service", "scorer", "model_v2"])
def test_good_package_names_pass(name: str) -> None:
    assert validation.check_package(name) is None


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("2fast", "not a Python identifier"),
        ("ml-service", "not a Python identifier"),
        ("class", "keyword"),
        ("match", "keyword"),  # a soft keyword: legal, but confusing as a package
        ("json", "shadow"),
        ("logging", "shadow"),
        ("mlflow", "shadow"),
        ("MyPkg", "lowercase"),
    ],
)
def test_bad_package_names_name_the_rule(name: str, rule: str) -> None:
    message = validation.check_package(name)
    assert message is not None
    assert f"package_name {name!r}" in message
    assert rule in message


@pytest.mark.parametrize("name", ["ml-service", "team/ml-service", "a.b_c__d", "org/sub/img-1"])
def test_good_image_names_pass(name: str) -> None:
    assert validation.check_image_name(name) is None


@pytest.mark.parametrize(
    "name", ["ML-Service", "a..b", "a-", "/lead", "trail/", "a b", "a:tag", ""]
)
def test_bad_image_names_name_the_rule(name: str) -> None:
    message = validation.check_image_name(name)
    assert message is not None
    assert "OCI repository name" in message


@pytest.mark.parametrize(
    "registry", ["ghcr.io/jane-doe", "localhost:5000", "registry.example.com:443/team/x"]
)
def test_good_registries_pass(registry: str) -> None:
    assert validation.check_registry(registry) is None


@pytest.mark.parametrize("registry", ["ghcr.io/Jane", "https://ghcr.io/x", "", "host:port"])
def test_bad_registries_name_the_rule(registry: str) -> None:
    message = validation.check_registry(registry)
    assert message is not None
    assert message.startswith(f"image_registry {registry!r}")


@pytest.mark.parametrize(
    ("replicas", "max_replicas", "rule"),
    [
        ("0", "5", "below 1"),
        ("-1", "5", "below 1"),
        ("two", "5", "not a whole number"),
        ("1.5", "5", "not a whole number"),
        ("2", "0", "below 1"),
        ("3", "2", "below replicas"),
    ],
)
def test_bad_replica_bounds_name_the_rule(replicas: str, max_replicas: str, rule: str) -> None:
    message = validation.check_replicas(replicas, max_replicas)
    assert message is not None
    assert rule in message


@pytest.mark.parametrize(
    ("replicas", "max_replicas"), [("1", "1"), ("2", "5"), ("3", "10"), ("1000", "1000")]
)
def test_good_replica_bounds_pass(replicas: str, max_replicas: str) -> None:
    assert validation.check_replicas(replicas, max_replicas) is None


# int() takes all of these; YAML and the API server do not read them as the same number.
@pytest.mark.parametrize(
    "number",
    ["١٢", "\uff13", "²", "1_0", "+3", " 3", "3 ", " 3 ", "010", "0x10", "1e3", "", "\t3"],
)
def test_replicas_are_ascii_digits_only(number: str) -> None:
    for replicas, max_replicas in ((number, "5"), ("1", number)):
        message = validation.check_replicas(replicas, max_replicas)
        assert message is not None
        assert "not a whole number" in message
        assert "ASCII digits" in message


@pytest.mark.parametrize("number", ["1001", "2147483648", "99999999999999999999"])
def test_replicas_stay_within_bounds(number: str) -> None:
    assert "over 1000" in (validation.check_replicas("1", number) or "")
    assert "over 1000" in (validation.check_replicas(number, number) or "")


@pytest.mark.parametrize("email", ["jane@example.com", "a.b+c@sub.example.org"])
def test_good_emails_pass(email: str) -> None:
    assert validation.check_email(email) is None


@pytest.mark.parametrize(
    "email", ["jane", "jane@", "@example.com", "jane@example", "a b@example.com"]
)
def test_bad_emails_name_the_rule(email: str) -> None:
    message = validation.check_email(email)
    assert message is not None
    assert message.startswith(f"author_email {email!r}")


@pytest.mark.parametrize("owner", ["-lead", "trail-", "dou--ble", "x" * 40, "has space"])
def test_bad_github_owners_name_the_rule(owner: str) -> None:
    assert validation.check_github_owner(owner) is not None


@pytest.mark.parametrize("namespace", ["Prod", "x" * 64, "a_b"])
def test_bad_namespaces_name_the_rule(namespace: str) -> None:
    message = validation.check_namespace(namespace)
    assert message is not None
    assert message.startswith(f"k8s_namespace {namespace!r}")


def test_the_defaults_pass_every_rule() -> None:
    spec = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    defaults = {
        **{name: spec[name] for name in (*validation.FREE_TEXT, *validation.CHOICES)},
        "project_slug": "ml-service",
        "package_name": "ml_service",
        "author_email": spec["author_email"],
        "github_owner": spec["github_owner"],
        "image_registry": "ghcr.io/" + spec["github_owner"].lower(),
        "image_name": "ml-service",
        "k8s_namespace": "ml-service",
        "replicas": spec["replicas"],
        "max_replicas": spec["max_replicas"],
    }
    assert validation.errors(defaults) == []


def test_every_answer_is_checked() -> None:
    checked = {name for name, _ in validation.CHECKS}
    spec = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    prompted = {key for key in spec if not key.startswith("_")}
    assert prompted - {"max_replicas"} == checked  # checked with replicas


def test_the_answers_are_checked_after_the_last_prompt() -> None:
    # cookiecutter renders `__` variables in order, after the prompts before them.
    spec = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    rendered = [key for key in spec if not key.startswith("_") or key.startswith("__")]
    assert rendered[-1] == "__answers_checked"
    assert "refuse_bad_answers" in spec["__answers_checked"]


# Free text: one line of printable text; the rest is escaped where it lands.
HOSTILE_TEXT = [
    'Ada\'s "Fraud" \\ Scorer',
    "$HOME ${HOME} `id` $(id)",
    "\"\"\"''' }} %} #} <b>*x*</b> [l](u) &amp; | ~~s~~ :smile:",
    "# 1. - > Ünïcödé 名前 🚀",
]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
@pytest.mark.parametrize("answer", validation.FREE_TEXT[:-1])
def test_printable_free_text_is_accepted(answer: str, text: str) -> None:
    assert validation.check_free_text(answer, text) is None


@pytest.mark.parametrize(
    "text", ["a\nb", "tab\there", "cr\r", "nul\x00", "del\x7f", "nel\x85", "ls\u2028", "\x1b[31m"]
)
@pytest.mark.parametrize("answer", validation.FREE_TEXT)
def test_control_characters_are_refused(answer: str, text: str) -> None:
    message = validation.check_free_text(answer, text)
    assert message is not None
    assert message.startswith(f"{answer} {text!r} contains the control character U+")
    assert "\n" not in message  # the error itself stays on one line


@pytest.mark.parametrize("text", ["{{ 7*7 }}", "{{", "a {% if x %}", "{#", "x{{y}}"])
@pytest.mark.parametrize("answer", validation.FREE_TEXT)
def test_jinja_in_free_text_is_refused(answer: str, text: str) -> None:
    message = validation.check_free_text(answer, text)
    assert message is not None
    assert "Jinja" in message


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_project_name_is_refused(name: str) -> None:
    assert (
        validation.check_free_text("project_name", name)
        == "project_name is empty: name the project"
    )


# Names that collide with what the project imports.
@pytest.mark.parametrize(
    ("name", "owner"),
    [
        ("numpy", "numpy"),
        ("pandas", "pandas"),
        ("fastapi", "fastapi"),
        ("sklearn", "scikit-learn"),
        ("yaml", "pyyaml"),
        ("dateutil", "python-dateutil"),
        ("mlflow", "mlflow"),
        ("uvicorn", "uvicorn"),
        ("pydantic_settings", "pydantic-settings"),
    ],
)
def test_import_names_of_locked_dependencies_are_refused(name: str, owner: str) -> None:
    message = validation.check_package(name)
    assert message is not None
    assert "would shadow" in message
    assert f"installed by {owner}, a locked dependency" in message


def test_every_locked_import_name_is_refused() -> None:
    names = {name for names in locked_imports.load().values() for name in names}
    accepted = sorted(name for name in names if validation.check_package(name) is None)
    assert accepted == []


def test_locked_import_names_match_uv_lock() -> None:
    lock = TEMPLATE / "{{cookiecutter.project_slug}}" / "uv.lock"
    assert set(locked_imports.load()) == locked_imports.locked_packages(lock), (
        "uv.lock changed: regenerate hooks/locked_imports.json (nox -s relock does it)"
    )


def test_top_level_names_come_from_the_record() -> None:
    record = "\n".join(
        [
            "sklearn/__init__.py,sha256=x,1",
            "scikit_learn-1.7.dist-info/RECORD,,",
            "_cffi_backend.cpython-313-x86_64-linux-gnu.so,sha256=x,1",
            "typing_extensions.py,sha256=x,1",
            "distutils-precedence.pth,sha256=x,1",
            "../../bin/uvicorn,sha256=x,1",
            "__pycache__/six.cpython-313.pyc,,",
        ]
    )
    assert locked_imports.top_level_names(record) == {
        "sklearn",
        "_cffi_backend",
        "typing_extensions",
        "__pycache__",
    }


@pytest.mark.parametrize("namespace", sorted(validation.RESERVED_NAMESPACES))
def test_namespaces_of_kubernetes_itself_are_refused(namespace: str) -> None:
    message = validation.check_namespace(namespace)
    assert message is not None
    assert "belongs to Kubernetes itself" in message


@pytest.mark.parametrize("port", ["0", "65536", "70000", "99999999"])
def test_registry_ports_out_of_range_are_refused(port: str) -> None:
    message = validation.check_registry(f"localhost:{port}/team")
    assert message is not None
    assert "port from 1 to 65535" in message


@pytest.mark.parametrize("port", ["1", "443", "5000", "65535"])
def test_registry_ports_in_range_pass(port: str) -> None:
    assert validation.check_registry(f"registry.example.com:{port}") is None


def test_the_longest_slug_leaves_room_for_every_derived_name() -> None:
    longest = "s" * validation.MAX_SLUG
    assert validation.check_slug(longest) is None
    assert all(len(longest + suffix) <= 63 for suffix in validation.DERIVED_SUFFIXES)
    message = validation.check_slug(longest + "s")
    assert message is not None
    assert f"over {validation.MAX_SLUG}" in message


def test_image_references_are_bounded() -> None:
    registry = "registry.example.com/team"
    fits = "x" * (validation.MAX_IMAGE_REFERENCE - len(registry) - len("/-train"))
    assert validation.check_image_reference(registry, fits) is None
    message = validation.check_image_reference(registry, fits + "x")
    assert message is not None
    assert f"within {validation.MAX_IMAGE_REFERENCE}" in message


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("python_version", "3.10"),
        ("python_version", "3.14"),
        ("python_version", "3.13 "),
        ("model", "xgboost"),
        ("model", "Random_Forest"),
        ("license", "GPL-3.0"),
        ("license", "mit"),
        ("license", ""),
    ],
)
def test_unknown_choices_are_refused(answer: str, value: str) -> None:
    message = validation.check_choice(answer, value)
    assert message is not None
    assert message.startswith(f"{answer} {value!r} is not one of the choices: use ")


def test_every_choice_is_offered_in_its_prompt() -> None:
    prompts = json.loads((TEMPLATE / "cookiecutter.json").read_text())["__prompts__"]
    for answer, options in validation.CHOICES.items():
        assert all(option in prompts[answer] for option in options), answer
        assert all(validation.check_choice(answer, option) is None for option in options)


def test_the_supported_pythons_are_one_list() -> None:
    """CHOICES holds the supported Pythons; the template CI's interpreters and the prompt follow."""
    versions = set(validation.CHOICES["python_version"])
    ci = yaml.safe_load((TEMPLATE / ".github" / "workflows" / "ci.yml").read_text())
    [setup] = [
        step
        for step in ci["jobs"]["nox"]["steps"]
        if step.get("uses", "").startswith("actions/setup-python")
    ]
    assert set(setup["with"]["python-version"].split()) == versions
    prompts = json.loads((TEMPLATE / "cookiecutter.json").read_text())["__prompts__"]
    assert set(re.findall(r"3\.\d+", prompts["python_version"])) == versions
