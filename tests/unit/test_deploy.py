"""deploy/: Kubernetes manifests against the Kubernetes schemas (offline), compose, Dockerfile.

No Docker engine or cluster exists in CI; what can be checked without one is
checked here: schema validity, structure, that every variable the manifests
set is one the service (or its gunicorn config) reads, and that the image runs
the same ``backpain-cds serve`` the end-to-end tests start.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from kubernetes_validate.utils import ValidationError, validate
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from service.auth.issuers import (
    PUBLICLY_KEYED_ISSUERS,
    load_trusted_issuers,
    parse_trusted_issuers,
)
from service.cli import main as cli_main
from service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
#: The Kubernetes release whose schemas the manifests must satisfy (shipped by kubernetes-validate).
KUBERNETES_VERSION = "1.37"


def _documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def _manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for index, doc in enumerate(_documents(path)):
            yield f"{path.name}[{index}]:{doc.get('kind')}", doc


MANIFESTS = dict(_manifests())


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in MANIFESTS.values() if doc["kind"] == kind]


def _one(kind: str) -> dict[str, Any]:
    found = _by_kind(kind)
    assert len(found) == 1, f"expected one {kind} in deploy/k8s, found {len(found)}"
    return found[0]


# ------------------------------------------------------------------ Kubernetes schemas


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_manifest_validates_against_kubernetes_schema(name: str) -> None:
    validate(MANIFESTS[name], KUBERNETES_VERSION, strict=True)


def test_validator_rejects_a_misspelt_field() -> None:
    """The schema check has teeth: a typo in a probe is caught in strict mode."""
    deployment = copy.deepcopy(_one("Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGett"] = container["readinessProbe"].pop("httpGet")
    with pytest.raises(ValidationError):
        validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_required_kind_is_present() -> None:
    kinds = {(doc["apiVersion"], doc["kind"]) for doc in MANIFESTS.values()}
    assert {
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("batch/v1", "Job"),
    } <= kinds


def _container(workload: Mapping[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def test_deployment_probes_resources_and_security() -> None:
    deployment = _one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    config = _config_env()
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert "emptyDir" in volumes[mounts[config["AUDIT_SPOOL_DIR"]]]
    issuers_dir = str(Path(config["CDS_TRUSTED_ISSUERS"]).parent)
    assert volumes[mounts[issuers_dir]]["configMap"]["name"] == "backpain-cds-issuers"
    # The pod is given more time than gunicorn's graceful shutdown needs.
    assert pod["terminationGracePeriodSeconds"] > 25 + 5


def test_selectors_match_the_pod_labels() -> None:
    deployment = _one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _one("Service")["spec"]["selector"].items() <= labels.items()
    assert _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    target = _one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert _one("HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2


def test_workloads_reference_objects_that_exist() -> None:
    names = {
        kind: {doc["metadata"]["name"] for doc in _by_kind(kind)}
        for kind in ("ConfigMap", "Secret", "ServiceAccount")
    }
    for workload in (_one("Deployment"), _one("Job")):
        pod = workload["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] in names["ServiceAccount"]
        container = _container(workload)
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in names["ConfigMap"]
            if "secretRef" in source:
                assert source["secretRef"]["name"] in names["Secret"]
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                secret = next(d for d in _by_kind("Secret") if d["metadata"]["name"] == ref["name"])
                assert ref["key"] in secret["stringData"]
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in names["ConfigMap"]


def test_deployment_and_job_run_the_cli() -> None:
    assert _container(_one("Deployment"))["args"][:1] == ["serve"]
    assert _container(_one("Job"))["args"] == ["db", "upgrade"]
    assert _one("Job")["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}


# ------------------------------------------------------------------ environment variables


class _RecordingEnv(dict[str, str]):
    """An environment that remembers which names ``Settings.from_env`` asks for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)


def _environ_reads(path: Path) -> set[str]:
    """Names passed as string literals to ``os.environ.get(...)`` / ``os.environ[...]``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and ast.unparse(node.func.value) == "os.environ"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
        if (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) == "os.environ"
            and isinstance(node.slice, ast.Constant)
        ):
            found.add(str(node.slice.value))
    return found


def _gunicorn_env() -> set[str]:
    """Variables read by gunicorn.conf.py (and its ``_int_env`` helper) and by the CLI."""
    conf = DEPLOY / "gunicorn.conf.py"
    text = conf.read_text(encoding="utf-8")
    helper_reads = set(re.findall(r'_int_env\("([A-Z_]+)"', text))
    cli = ROOT / "service" / "cli" / "__init__.py"
    return helper_reads | _environ_reads(conf) | _environ_reads(cli)


SETTINGS_ENV = _RecordingEnv({})
Settings.from_env(SETTINGS_ENV)
#: Every variable Settings.from_env reads.
SETTINGS_NAMES = frozenset(SETTINGS_ENV.asked)
#: prometheus-client's own switch (set in the image, read by the library and observability).
LIBRARY_NAMES = frozenset({"PROMETHEUS_MULTIPROC_DIR"})


def _config_env() -> dict[str, str]:
    config = next(
        doc for doc in _by_kind("ConfigMap") if doc["metadata"]["name"] == "backpain-cds-config"
    )
    data: dict[str, str] = config["data"]
    return data


def _compose() -> dict[str, Any]:
    with (DEPLOY / "compose.yaml").open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


def _secret_env() -> dict[str, str]:
    data: dict[str, str] = _one("Secret")["stringData"]
    return data


def _k8s_env_names() -> set[str]:
    names = set(_config_env()) | set(_secret_env())
    for workload in (_one("Deployment"), _one("Job")):
        names |= {item["name"] for item in _container(workload).get("env", [])}
    return names


def test_settings_reads_the_documented_variables() -> None:
    """Guards the recording trick below: it really sees what from_env reads."""
    assert {"DATABASE_URL", "CDS_AUTH", "CDS_TRUSTED_ISSUERS", "LOG_LEVEL"} <= SETTINGS_NAMES


@pytest.mark.parametrize(
    ("where", "names"),
    [
        ("k8s", sorted(_k8s_env_names())),
        (
            "compose",
            sorted(
                {
                    name
                    for service in _compose()["services"].values()
                    for name in service.get("environment", {})
                    if service.get("image", "").startswith("backpain-cds")
                }
            ),
        ),
    ],
)
def test_every_variable_set_is_read_by_the_service(where: str, names: list[str]) -> None:
    known = SETTINGS_NAMES | _gunicorn_env() | LIBRARY_NAMES
    unknown = sorted(set(names) - known)
    assert not unknown, f"{where} sets variable(s) nothing reads: {unknown}"


def test_configmap_and_secret_values_are_valid_settings() -> None:
    settings = Settings.from_env({**_config_env(), **_secret_env()})
    assert settings.auth_enabled is True
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.trusted_issuers_file is not None


#: deploy/dev-only/ holds what must never back a real deployment.
DEV_ONLY = DEPLOY / "dev-only"
SANDBOX_ISS = "https://sandbox.cds-hooks.org"
#: The kid in the header of every token the public CDS Hooks sandbox sends (recorded on loopback).
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"


def _example_issuer_documents() -> dict[str, Any]:
    """Every issuers file deploy/ ships or mounts, dev-only/ excepted, by where it is."""
    documents: dict[str, Any] = {}
    for path in sorted(DEPLOY.rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if DEV_ONLY not in path.parents and isinstance(data, dict) and "issuers" in data:
            documents[str(path.relative_to(DEPLOY))] = data
    issuers = next(
        doc for doc in _by_kind("ConfigMap") if doc["metadata"]["name"] == "backpain-cds-issuers"
    )
    mounted = Path(_config_env()["CDS_TRUSTED_ISSUERS"]).name
    documents["k8s ConfigMap backpain-cds-issuers"] = json.loads(issuers["data"][mounted])
    return documents


def test_example_issuer_files_parse() -> None:
    documents = _example_issuer_documents()
    assert {"trusted-issuers.example.json", "k8s ConfigMap backpain-cds-issuers"} <= set(documents)
    for where, document in documents.items():
        assert parse_trusted_issuers(document, where)


def test_no_example_trusts_an_issuer_whose_private_key_is_public() -> None:
    assert SANDBOX_ISS in PUBLICLY_KEYED_ISSUERS  # its private key is in its repository
    for where, document in _example_issuer_documents().items():
        trusted = set(parse_trusted_issuers(document, where))
        assert not trusted & set(PUBLICLY_KEYED_ISSUERS), f"{where} trusts a public key"


def test_the_dev_only_file_trusts_the_sandbox_by_its_published_public_key() -> None:
    path = DEV_ONLY / "trusted-issuers.sandbox.json"
    [entry] = json.loads(path.read_text(encoding="utf-8"))["issuers"]
    assert all("d" not in jwk for jwk in entry["jwks"]["keys"])
    sandbox = load_trusted_issuers(path)[SANDBOX_ISS]
    assert sandbox.jku == "https://sandbox.cds-hooks.org/.well-known/jwks.json"
    assert sandbox.pinned_keys is not None
    [key] = list(sandbox.pinned_keys)
    assert (key.key_id, key.algorithm_name) == (SANDBOX_KID, "ES384")


# ------------------------------------------------------------------ compose


def test_compose_structure() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"db", "migrate", "cds"}
    db, migrate, cds = services["db"], services["migrate"], services["cds"]

    assert re.fullmatch(r"postgres:16(\..*|-.*)?", db["image"])
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "PostgreSQL data must be on a named volume"

    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert migrate.get("restart") == "no"

    assert cds["depends_on"]["db"]["condition"] == "service_healthy"
    assert cds["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "/healthz" in " ".join(cds["healthcheck"]["test"])
    assert migrate["image"] == cds["image"]
    assert migrate["build"]["dockerfile"] == cds["build"]["dockerfile"] == "deploy/Dockerfile"


def test_compose_turns_auth_on_with_a_mounted_issuers_file() -> None:
    cds = _compose()["services"]["cds"]
    environment = cds["environment"]
    assert Settings.from_env({"CDS_AUTH": environment["CDS_AUTH"]}).auth_enabled is True
    mounts = {
        target: source for source, target, *_ in (volume.split(":") for volume in cds["volumes"])
    }
    source = mounts[environment["CDS_TRUSTED_ISSUERS"]]
    assert (DEPLOY / source).resolve() == (DEPLOY / "trusted-issuers.example.json").resolve()
    assert mounts[environment["AUDIT_SPOOL_DIR"]] in _compose()["volumes"]


# ------------------------------------------------------------------ Dockerfile


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    logical = re.sub(r"\\\n", " ", text)
    instructions: list[tuple[str, str]] = []
    for line in logical.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert len(starts) >= 2, "the Dockerfile must be multi-stage"
    return instructions[starts[-1] :]


def _exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(part, str) for part in value)
    return value


def image_command() -> list[str]:
    stage = _final_stage()
    entrypoint = [_exec_form(args) for keyword, args in stage if keyword == "ENTRYPOINT"]
    cmd = [_exec_form(args) for keyword, args in stage if keyword == "CMD"]
    return (entrypoint[-1] if entrypoint else []) + (cmd[-1] if cmd else [])


def test_image_starts_backpain_cds_serve() -> None:
    command = image_command()
    assert command[:2] == ["backpain-cds", "serve"]
    # The console script is the CLI the e2e tests start with `python -m service.cli serve`.
    with (ROOT / "pyproject.toml").open("rb") as handle:
        scripts = tomllib.load(handle)["project"]["scripts"]
    assert scripts["backpain-cds"] == "service.cli:main"
    # ... and every option the image passes is one `serve` accepts.
    serve = cli_main.commands["serve"]
    assert isinstance(serve, click.Command)
    context = serve.make_context("serve", command[2:])
    assert context.params["host"] == "0.0.0.0"


def test_image_runs_as_a_non_root_user() -> None:
    users = [args for keyword, args in _final_stage() if keyword == "USER"]
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_image_base_is_slim_python_311_and_final_stage_has_no_build_tools() -> None:
    args = {
        name: value
        for keyword, rest in _dockerfile()
        if keyword == "ARG" and "=" in rest
        for name, value in [rest.split("=", 1)]
    }
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", args["PYTHON_IMAGE"])
    runs = " ".join(args for keyword, args in _final_stage() if keyword == "RUN")
    for tool in ("apt-get install", "gcc", "build-essential", "pip install"):
        assert tool not in runs, f"the final stage installs {tool!r}"


def test_image_has_a_healthcheck_on_healthz() -> None:
    checks = [args for keyword, args in _final_stage() if keyword == "HEALTHCHECK"]
    assert checks and "/healthz" in checks[-1]


def test_image_copies_the_application_and_installs_pinned_dependencies() -> None:
    copied = " ".join(args for keyword, args in _dockerfile() if keyword == "COPY")
    for part in ("service/", "rules/", "questionnaires/", "terminology/", "migrations/"):
        assert part in copied
    for part in ("openapi.yaml", "pyproject.toml", "deploy/constraints.txt"):
        assert part in copied
    installs = [shlex.split(args) for keyword, args in _dockerfile() if keyword == "RUN"]
    assert any(
        "--requirement" in words
        and "/tmp/constraints.txt" in words
        and "--only-binary=:all:" in words
        for words in installs
    )


# ------------------------------------------------------------------ constraints (the lock)


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (DEPLOY / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_runtime_dependency_within_pyproject() -> None:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        dependencies = tomllib.load(handle)["project"]["dependencies"]
    pins = _pins()
    for line in dependencies:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is a runtime dependency but not pinned"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} does not satisfy pyproject's {requirement}"
        )
    for dev_only in ("pytest", "ruff", "mypy", "kubernetes-validate", "testcontainers"):
        assert dev_only not in pins, f"{dev_only} is not a runtime dependency"
