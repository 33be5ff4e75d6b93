"""Delivery checks of baked projects: manifests render and pass `nox -s manifests`, answers flow
into the rendered objects and workflows, and GitHub's `${{ }}` survives cookiecutter."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CUSTOM_ANSWERS, TEMPLATE, bake, nox, project_env, run

pytestmark = pytest.mark.delivery


@pytest.fixture(scope="module")
def custom_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(tmp_path_factory.mktemp("custom"), **CUSTOM_ANSWERS)


def render_dir(project: Path, directory: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, (
        "kubectl is needed to render the overlays (https://kubernetes.io/docs/tasks/tools/)"
    )
    out = run([kubectl, "kustomize", directory], project).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def render(project: Path, overlay: str) -> list[dict[str, Any]]:
    return render_dir(project, f"k8s/overlays/{overlay}")


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def images(docs: list[dict[str, Any]]) -> set[str]:
    return {
        c["image"]
        for d in docs
        if d["kind"] in {"Deployment", "Job"}
        for c in d["spec"]["template"]["spec"]["containers"]
    }


def test_manifests_session_passes_on_custom_answers(custom_project: Path) -> None:
    output = nox(custom_project, "manifests")
    assert "ok: delivery.yml pushes only after the scan gate" in output
    for overlay in ("kind", "production"):
        assert f"ok: build/manifests/{overlay}.yaml: probes hit the server's routes" in output
    assert "Failed checks: 0" in output


def k8s_sources(project: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((project / "k8s").rglob("*.yaml")))


def test_each_name_is_written_once_in_k8s(custom_project: Path) -> None:
    """kustomize carries the namespace, the part-of label and the images' tag from one
    component: no copy to keep in step (the answers differ from each other, so each is found)."""
    sources = k8s_sources(custom_project)
    component = (
        custom_project / "k8s" / "components" / "project" / "kustomization.yaml"
    ).read_text()
    assert sources.count("risk-prod") == component.count("risk-prod") == 1
    assert sources.count("app.kubernetes.io/part-of: ") == 1
    assert sources.count("newTag: dev") == 2  # serving and training image, in the component
    for overlay in ("overlays/kind", "overlays/production", "hpa-load"):
        path = custom_project / "k8s" / overlay / "kustomization.yaml"
        kustomization = yaml.safe_load(path.read_text())
        assert "namespace" not in kustomization, overlay
        assert "labels" not in kustomization, overlay
        assert kustomization["components"][0].endswith("/components/project"), overlay
    nodes = yaml.safe_load((custom_project / "k8s" / "kind-config.yaml").read_text())["nodes"]
    assert sources.count("kindest/node:") == 1
    assert len({node["image"] for node in nodes}) == 1


def test_answers_flow_into_the_rendered_objects(custom_project: Path) -> None:
    kind, production = render(custom_project, "kind"), render(custom_project, "production")
    slug = "fraud-scorer"
    for docs in (kind, production):
        namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
        assert namespaces == {"risk-prod"}
        assert one(docs, "Namespace", "risk-prod")
    hpa = one(kind, "HorizontalPodAutoscaler", slug)["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 7)
    prod_hpa = one(production, "HorizontalPodAutoscaler", slug)["spec"]
    assert prod_hpa["minReplicas"] >= 3
    assert prod_hpa["maxReplicas"] > 7
    assert images(kind) == {"fraud-api:dev", "fraud-api-train:dev"}
    [prod_image] = images(production)
    assert re.fullmatch(r"registry\.example\.com/risk/fraud-api@sha256:[0-9a-f]{64}", prod_image)
    deployment = one(kind, "Deployment", slug)["spec"]
    assert "replicas" not in deployment
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_workflows_render_with_github_expressions_intact(custom_project: Path) -> None:
    for path in sorted((custom_project / ".github" / "workflows").glob("*.yml")):
        text = path.read_text()
        assert "${{" in text, path
        assert "{%" not in text, path
        assert "{{ cookiecutter" not in text, path
        workflow = yaml.safe_load(text)
        assert workflow["permissions"] == {}, path
        for job in workflow["jobs"].values():
            if "uses" in job:  # a call of a workflow here, whose own jobs are checked
                assert job["uses"].startswith("./.github/workflows/"), path
                continue
            assert "timeout-minutes" in job, path
            for step in job["steps"]:
                if "uses" in step:
                    assert re.search(r"@[0-9a-f]{40}$", step["uses"]), step["uses"]
    env = yaml.safe_load((custom_project / ".github/workflows/delivery.yml").read_text())["env"]
    assert env["IMAGE_NAME"] == "fraud-api"
    assert env["REGISTRY"] == "registry.example.com/risk"
    assert env["NAMESPACE"] == "risk-prod"
    # metadata-action's semver patterns are GitHub-side templates, not Jinja.
    assert "pattern={{version}}" in (custom_project / ".github/workflows/delivery.yml").read_text()


def test_checks_catch_a_broken_rollout(default_project: Path) -> None:
    """The project's own rules fail on a Deployment that may drop pods during a rollout."""
    deployment = default_project / "k8s" / "base" / "deployment.yaml"
    original = deployment.read_text()
    broken = default_project / "build" / "broken.yaml"
    broken.parent.mkdir(parents=True, exist_ok=True)
    try:
        deployment.write_text(original.replace("maxUnavailable: 0", "maxUnavailable: 1"))
        broken.write_text(yaml.safe_dump_all(render(default_project, "kind")))
    finally:
        deployment.write_text(original)
    result = subprocess.run(
        [sys.executable, "-m", "tools.manifest_rules", str(broken)],
        cwd=default_project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "maxUnavailable 0" in result.stderr


def test_cluster_tool_names_a_missing_kind(default_project: Path, tmp_path: Path) -> None:
    """Without kind on PATH, deploy says how to install it in one line, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "tools.cluster", "deploy", "--image", "ml-service=ml-service:dev"],
        cwd=default_project,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": str(tmp_path)},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: install kind:")
    assert "Traceback" not in result.stderr


def template_ci() -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(
        (TEMPLATE / ".github" / "workflows" / "ci.yml").read_text()
    )
    return workflow


def test_template_ci_runs_every_root_session() -> None:
    """The template repository's own workflow runs the sessions `nox` runs here."""
    workflow = template_ci()
    job = workflow["jobs"]["nox"]
    assert job["strategy"]["matrix"]["session"] == [
        "lint",
        "unit",
        "e2e",
        "images",
        "rehearsal",
        "delivery",
    ]
    assert workflow["permissions"] == {}
    for job in workflow["jobs"].values():
        assert "timeout-minutes" in job
        for step in job["steps"]:
            if "uses" in step:
                assert re.search(r"@[0-9a-f]{40}$", step["uses"]), step["uses"]


def test_template_ci_deploys_the_defaults_to_kind(default_project: Path) -> None:
    """Section 3 of issue 7: a real cluster where one can run, with the project's own sessions,
    kind and kubectl at the versions the generated delivery workflow uses."""
    workflow = template_ci()
    job = workflow["jobs"]["kind"]
    runs = [step.get("run", "") for step in job["steps"]]
    order = [
        "-s train build",
        "-s deploy",
        "-s canary",
        "-s autoscale",
        "-s scale -- 5",
        "tools.cluster smoke",
        "-s undeploy",
    ]
    positions = [next(i for i, run in enumerate(runs) if command in run) for command in order]
    assert positions == sorted(positions), runs
    assert job["steps"][positions[-1]]["if"] == "always()"
    [kind_action] = [s for s in job["steps"] if s.get("uses", "").startswith("helm/kind-action")]
    delivery = workflow_of(default_project)["env"]
    assert workflow["env"]["KIND_VERSION"] == delivery["KIND_VERSION"]
    assert workflow["env"]["KUBECTL_VERSION"] == delivery["KUBECTL_VERSION"]
    assert kind_action["with"]["kubectl_version"] == "${{ env.KUBECTL_VERSION }}"
    assert job["permissions"] == {"contents": "read"}


# ---- the generated delivery workflow: defects found in review (issue 7, section 2) ----------


def workflow_of(project: Path, name: str = "delivery.yml") -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(
        (project / ".github" / "workflows" / name).read_text()
    )
    return workflow


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if s.get("uses", "").startswith(action)]


def test_login_targets_the_answered_registry_host(
    default_project: Path, custom_project: Path
) -> None:
    """GHCR logs in with GITHUB_TOKEN; any other registry with the secrets the README names."""
    assert workflow_of(default_project)["env"]["REGISTRY_HOST"] == "ghcr.io"
    workflow = workflow_of(custom_project)
    assert workflow["env"]["REGISTRY_HOST"] == "registry.example.com"
    logins = [
        login
        for job in workflow["jobs"].values()
        for login in steps_using(job, "docker/login-action")
    ]
    assert len(logins) == 2  # publish pushes, production verifies
    for login in logins:
        settings = login["with"]
        assert settings["registry"] == "${{ env.REGISTRY_HOST }}"
        assert "env.REGISTRY_HOST == 'ghcr.io' && github.actor" in settings["username"]
        assert settings["username"].endswith("|| secrets.REGISTRY_USERNAME }}")
        assert "env.REGISTRY_HOST == 'ghcr.io' && secrets.GITHUB_TOKEN" in settings["password"]
        assert settings["password"].endswith("|| secrets.REGISTRY_PASSWORD }}")
    [deploy] = [s for s in workflow["jobs"]["kind"]["steps"] if "--pull-secret" in s.get("run", "")]
    assert deploy["env"]["REGISTRY_SERVER"] == "${{ env.REGISTRY_HOST }}"
    readme = (custom_project / "docs" / "deploy.md").read_text()
    assert "`REGISTRY_USERNAME`" in readme
    assert "`REGISTRY_PASSWORD`" in readme


def run_checks(project: Path) -> subprocess.CompletedProcess[str]:
    """The project's rules with no rendered overlay: the delivery workflow's only."""
    return subprocess.run(
        [sys.executable, "-m", "tools.manifest_rules"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("original", "broken"),
    [
        # build-and-scan pushes straight from the build, before its own gate
        ("push: false", "push: true"),
        # publish no longer waits for the scan of either image
        (
            "    needs: build-and-scan\n    runs-on: ubuntu-24.04\n    timeout-minutes: 20\n",
            "    needs: train\n    runs-on: ubuntu-24.04\n    timeout-minutes: 20\n",
        ),
        # the job that fetches or hands on the model gets a write scope
        (
            "    permissions:\n      contents: read # check out the code\n    outputs:",
            "    permissions:\n      contents: read # check out the code\n"
            "      packages: write\n    outputs:",
        ),
    ],
    ids=["push-in-build", "publish-before-scan", "model-with-write-scope"],
)
def test_checks_catch_a_push_before_the_scan(tmp_path: Path, original: str, broken: str) -> None:
    project = bake(tmp_path)
    assert run_checks(project).returncode == 0
    workflow = project / ".github" / "workflows" / "delivery.yml"
    text = workflow.read_text()
    assert text.count(original) == 1, original
    workflow.write_text(text.replace(original, broken))
    result = run_checks(project)
    assert result.returncode == 1
    assert result.stderr.startswith("FAIL delivery.yml job ")


def test_jobs_split_privileges_and_scan_both_images(default_project: Path) -> None:
    jobs = workflow_of(default_project)["jobs"]
    assert list(jobs) == [
        *["changes", "train", "model", "build-and-scan"],
        *["report", "publish", "kind", "production"],
    ]
    for name in ("changes", "train", "model", "build-and-scan"):
        assert jobs[name]["permissions"] == {"contents": "read"}, name
    assert set(jobs["publish"]["permissions"]) == {"packages", "id-token", "attestations"}
    assert jobs["publish"]["needs"] == "build-and-scan"
    dockerfiles = {
        leg["dockerfile"] for leg in jobs["build-and-scan"]["strategy"]["matrix"]["include"]
    }
    assert dockerfiles == {"Dockerfile", "Dockerfile.train"}
    assert jobs["publish"]["strategy"]["matrix"]["image"] == ["serve", "train"]
    [build] = steps_using(jobs["build-and-scan"], "docker/build-push-action")
    assert build["with"]["push"] is False
    # The image reaches publish only as the artifact uploaded after the gate.
    names = [s.get("name", "") for s in jobs["build-and-scan"]["steps"]]
    gate = names.index("Gate on fixable HIGH/CRITICAL vulnerabilities and any secret")
    handoff = names.index("Hand the scanned image to the publish job")
    assert gate < handoff


def test_one_scan_policy(default_project: Path) -> None:
    """Every trivy step reads trivy.yaml; the SARIF report holds only the gated severities."""
    workflow = workflow_of(default_project)
    trivy = steps_using(workflow["jobs"]["build-and-scan"], "aquasecurity/trivy-action")
    assert len(trivy) == 3  # report, gate, SBOM
    assert all(step["with"]["trivy-config"] == "trivy.yaml" for step in trivy)
    [sarif] = [s for s in trivy if s["with"]["format"] == "sarif"]
    assert sarif["with"]["limit-severities-for-sarif"] == "true"
    assert sarif["with"]["severity"] == "${{ env.VULN_SEVERITY }}"
    [gate] = [s for s in trivy if s["with"]["format"] == "table"]
    assert "exit-code" not in gate["with"]  # trivy.yaml's exit-code: 1
    assert gate["with"]["severity"] == "${{ env.VULN_SEVERITY }}"
    assert workflow["env"]["VULN_SEVERITY"] == "HIGH,CRITICAL"
    policy = yaml.safe_load((default_project / "trivy.yaml").read_text())
    assert policy["exit-code"] == 1
    assert policy["vulnerability"]["ignore-unfixed"] is True


def test_private_repositories_get_warnings_not_failures(default_project: Path) -> None:
    jobs = workflow_of(default_project)["jobs"]
    for job, action in (
        ("report", "github/codeql-action/upload-sarif"),
        ("publish", "actions/attest-build-provenance"),
    ):
        [step] = steps_using(jobs[job], action)
        assert step["continue-on-error"] is True
        later = jobs[job]["steps"][jobs[job]["steps"].index(step) + 1 :]
        assert any(
            step["id"] in s.get("if", "") + str(s.get("env", {})) and "::warning::" in s["run"]
            for s in later
        ), f"{job}: no warning after {action}"
    readme = (default_project / "docs" / "deploy.md").read_text()
    assert "GitHub Advanced Security" in readme
    assert "build-provenance attestations need GitHub Enterprise Cloud" in readme


def test_production_verifies_before_it_applies(default_project: Path) -> None:
    job = workflow_of(default_project)["jobs"]["production"]
    runs = [step.get("run", "") for step in job["steps"]]
    first = runs[0]
    assert '-z "${KUBECONFIG_CONTENT}"' in first
    assert first.count("::error::") == 1
    assert "KUBECONFIG" in first.split("::error::")[1].splitlines()[0]
    verify = next(i for i, run in enumerate(runs) if "cosign verify " in run)
    attest = next(i for i, run in enumerate(runs) if "cosign verify-attestation" in run)
    provenance = next(i for i, run in enumerate(runs) if "gh attestation verify" in run)
    apply = next(i for i, run in enumerate(runs) if "kubectl apply -k" in run)
    assert max(verify, attest, provenance) < apply
    for i in (verify, attest):
        assert "--certificate-oidc-issuer https://token.actions.githubusercontent.com" in runs[i]
        assert '--certificate-identity "https://github.com/${GITHUB_WORKFLOW_REF}"' in runs[i]
    assert "--signer-workflow" in runs[provenance]
    assert job["concurrency"]["cancel-in-progress"] is False
    assert job["environment"] == "production"
    pull = next(run for run in runs if "docker-registry registry-credentials" in run)
    assert runs.index(pull) < apply
    readme = (default_project / "docs" / "deploy.md").read_text()
    assert "**add required reviewers**" in readme
    assert "`REGISTRY_PULL_TOKEN`" in readme


def test_production_pulls_with_the_registry_credentials(default_project: Path) -> None:
    [account] = [d for d in render(default_project, "production") if d["kind"] == "ServiceAccount"]
    assert account["imagePullSecrets"] == [{"name": "registry-credentials"}]


def test_kind_gets_a_kubectl_of_the_node_version_and_the_autoscaler_step(
    custom_project: Path,
) -> None:
    workflow = workflow_of(custom_project)
    kind = yaml.safe_load((custom_project / "k8s" / "kind-config.yaml").read_text())
    node_version = kind["nodes"][0]["image"].split(":")[1].split("@")[0]
    assert workflow["env"]["KUBECTL_VERSION"] == node_version == "v1.37.0"
    job = workflow["jobs"]["kind"]
    [action] = steps_using(job, "helm/kind-action")
    assert action["with"]["kubectl_version"] == "${{ env.KUBECTL_VERSION }}"
    runs = [step.get("run", "") for step in job["steps"]]
    autoscale = next(i for i, run in enumerate(runs) if "tools.cluster autoscale" in run)
    scale = next(i for i, run in enumerate(runs) if "tools.cluster scale" in run)
    assert autoscale < scale  # at the floor first, so "above the floor" means the load did it
    assert '-l "app.kubernetes.io/part-of=${DEPLOYMENT}"' in runs[-1]
    assert workflow["env"]["DEPLOYMENT"] == "fraud-scorer"
    assert action["with"]["cluster_name"] == "${{ env.DEPLOYMENT }}"
    assert "node_image" not in action["with"]  # kind-config.yaml's, pinned there only


def test_the_autoscaler_demo_runs_only_when_dispatched_with_its_input(
    default_project: Path,
) -> None:
    """A push to main deploys, scales and predicts; the long load demo is opt-in."""
    workflow = workflow_of(default_project)
    triggers = workflow[True]  # PyYAML reads the key `on` as a boolean
    assert set(triggers) == {"push", "workflow_dispatch"}
    demo = triggers["workflow_dispatch"]["inputs"]["autoscaler_demo"]
    assert (demo["type"], demo["default"]) == ("boolean", False)
    steps = workflow["jobs"]["kind"]["steps"]
    [autoscale] = [s for s in steps if "tools.cluster autoscale" in s.get("run", "")]
    assert autoscale["if"] == (
        "${{ github.event_name == 'workflow_dispatch' && inputs.autoscaler_demo }}"
    )
    # Everything else in the job runs on every push: nothing else reads the input.
    for step in steps:
        if step is not autoscale:
            assert "autoscaler_demo" not in str(step), step
    pushed = [s.get("run", "") for s in steps if "if" not in s]
    for command in ("tools.cluster deploy", "tools.cluster scale", "tools.cluster smoke"):
        assert any(command in run for run in pushed), command
    assert "autoscaler_demo" in str(workflow["jobs"]["kind"]["timeout-minutes"])
    # A dispatched run on a tag is a demo, never a production release.
    assert workflow["jobs"]["production"]["if"].startswith("github.event_name == 'push' && ")


def test_the_canary_runs_only_when_dispatched_with_its_input(default_project: Path) -> None:
    """The canary rollout is opt-in, after the deploy it stands beside, before the scale-out."""
    workflow = workflow_of(default_project)
    flag = workflow[True]["workflow_dispatch"]["inputs"]["canary"]
    assert (flag["type"], flag["default"]) == ("boolean", False)
    steps = workflow["jobs"]["kind"]["steps"]
    runs = [step.get("run", "") for step in steps]
    [at] = [i for i, run in enumerate(runs) if "tools.canary run" in run]
    assert steps[at]["if"] == "${{ github.event_name == 'workflow_dispatch' && inputs.canary }}"
    assert '--image "${IMAGE_NAME}=${SERVE_REF}"' in runs[at]  # the published digest
    deploy = next(i for i, run in enumerate(runs) if "tools.cluster deploy" in run)
    scale = next(i for i, run in enumerate(runs) if "tools.cluster scale" in run)
    assert deploy < at < scale
    assert "inputs.canary" in str(workflow["jobs"]["kind"]["timeout-minutes"])


def test_pod_templates_carry_the_project_labels(custom_project: Path) -> None:
    """`kubectl logs -l app.kubernetes.io/part-of=<slug>` finds serving, MLflow and training."""
    docs = [*render(custom_project, "kind"), *render_dir(custom_project, "k8s/hpa-load")]
    workloads = [d for d in docs if d["kind"] in {"Deployment", "Job"}]
    names = {d["metadata"]["name"] for d in workloads}
    assert {"fraud-scorer", "mlflow", "fraud-scorer-train", "fraud-scorer-load"} <= names
    for workload in workloads:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "fraud-scorer", workload["metadata"]["name"]
        selector = workload["spec"].get("selector", {}).get("matchLabels", {})
        assert "app.kubernetes.io/part-of" not in selector  # selectors are immutable


def test_pod_security_is_pinned_to_the_node_minor(custom_project: Path) -> None:
    for overlay in ("kind", "production"):
        [namespace] = [d for d in render(custom_project, overlay) if d["kind"] == "Namespace"]
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.37"


def test_dependabot_watches_only_what_it_can_update(default_project: Path) -> None:
    config = yaml.safe_load((default_project / ".github" / "dependabot.yml").read_text())
    ecosystems = {update["package-ecosystem"] for update in config["updates"]}
    assert ecosystems == {"uv", "github-actions"}
    froms = [
        line
        for name in ("Dockerfile", "Dockerfile.train")
        for line in (default_project / name).read_text().splitlines()
        if line.startswith("FROM python:")
    ]
    # Why there is no docker entry: Dependabot cannot update an ARG-built tag.
    assert froms
    assert all("${PYTHON_VERSION}" in line for line in froms)
    assert "schedule" in workflow_of(default_project, "ci.yml")[True]  # YAML reads `on` as True


def test_scan_fails_in_ci_without_the_vulnerability_db(
    default_project: Path, tmp_path: Path
) -> None:
    """Under CI a scan that cannot fetch trivy's DB stops with one line (no images needed:
    it checks first). The DB repository is made unreachable, so this holds online too."""
    env = project_env(
        CI="true",
        TRIVY_CACHE_DIR=str(tmp_path / "empty-cache"),
        TRIVY_DB_REPOSITORY="127.0.0.1:9/no/trivy-db",
    )
    env.pop("SCAN_OFFLINE_OK", None)
    result = subprocess.run(
        ["nox", "--non-interactive", "-s", "scan"],
        cwd=default_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr  # nox passes the tool's stderr on with its stdout
    [line] = [line for line in output.splitlines() if line.startswith("error: ")]
    assert "trivy cannot download its vulnerability DB and CI is set" in line
    assert "SCAN_OFFLINE_OK=1" in line
    assert "Traceback" not in output


def test_cluster_tool_shows_kubectls_own_error(default_project: Path, tmp_path: Path) -> None:
    """No cluster: the port-forward cannot start, and the one line is kubectl's own error."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    result = subprocess.run(
        [sys.executable, "-m", "tools.cluster", "smoke"],
        cwd=default_project,
        capture_output=True,
        text=True,
        check=False,
        env=project_env(KUBECONFIG=str(kubeconfig)),
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: kubectl port-forward svc/ml-service exited 1: ")
    assert "kind-ml-service" in result.stderr  # kubectl names the context it cannot find
    assert "Traceback" not in result.stderr


# The template CI's delivery job and .ci/run start this registry (as for the images tier).
REGISTRY = "localhost:5000"


def registry_digest(repository: str, tag: str) -> str:
    """The manifest digest the registry serves for `tag`."""
    host, _, name = repository.partition("/")
    request = urllib.request.Request(
        f"http://{host}/v2/{name}/manifests/{tag}",
        method="HEAD",
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
            "application/vnd.oci.image.manifest.v1+json"
        },
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - http:// we built
        return str(answer.headers["Docker-Content-Digest"])


@pytest.mark.docker
def test_publish_steps_push_one_digest_under_every_tag(
    default_project: Path, docker: str, tmp_path: Path
) -> None:
    """The publish job's own shell steps, run against a real registry: the commit tag is pushed
    first and gives the digest the later steps sign and deploy; the human tags are that digest."""
    repository = f"{REGISTRY}/delivery-test/{uuid.uuid4().hex[:12]}"
    tags = [f"{repository}:main", f"{repository}:1.2.3", f"{repository}:sha-0123abc"]
    (tmp_path / "stamp").write_text(repository)
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY stamp /stamp\n")
    run([docker, "build", "--quiet", *(f"--tag={tag}" for tag in tags), "."], tmp_path)
    image_dir = tmp_path / "build" / "image"
    image_dir.mkdir(parents=True)
    (image_dir / "tags").write_text("\n".join(tags) + "\n")
    outputs = tmp_path / "github-output"
    outputs.touch()
    env = project_env(IMAGE_DIR="build/image", IMAGE="serve", GITHUB_OUTPUT=str(outputs))
    steps = {s["name"]: s for s in workflow_of(default_project)["jobs"]["publish"]["steps"]}
    try:
        run(["bash", "-e", "-c", steps["Push the commit tag"]["run"]], tmp_path, env)
        values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
        digest = registry_digest(repository, "sha-0123abc")
        assert values["serve"] == values["ref"] == f"{repository}@{digest}"
        assert values["repository"] == repository
        with pytest.raises(urllib.error.HTTPError):  # no human tag before signing
            registry_digest(repository, "main")
        run(
            ["bash", "-e", "-c", steps["Add the human tags (branch, version)"]["run"]],
            tmp_path,
            env,
        )
        assert {registry_digest(repository, tag) for tag in ("main", "1.2.3")} == {digest}
    finally:
        run([docker, "image", "rm", *tags], tmp_path)
