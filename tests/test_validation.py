"""Answer rules in hooks/validation.py, checked directly."""

from __future__ import annotations

import json

import pytest

from hooks import validation
from tests.conftest import TEMPLATE


@pytest.mark.parametrize("slug", ["ml-service", "a", "model2", "x" * 63, "fraud-scorer-v2"])
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
    assert "DNS-1123" in message


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


@pytest.mark.parametrize(("replicas", "max_replicas"), [("1", "1"), ("2", "5"), (" 3 ", "10")])
def test_good_replica_bounds_pass(replicas: str, max_replicas: str) -> None:
    assert validation.check_replicas(replicas, max_replicas) is None


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


def test_every_answer_with_a_rule_is_checked() -> None:
    checked = {name for name, _ in validation.CHECKS}
    spec = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    free_text = {"project_name", "description", "author_name"}
    choices = {key for key, value in spec.items() if isinstance(value, list)}
    prompted = {key for key in spec if not key.startswith("_")}
    assert prompted - free_text - choices - {"max_replicas"} == checked
