"""The deployment files (Dockerfile, compose.yaml, deploy/kubernetes/) against their schemas and the Procfile."""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from jitbot.core.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30"  # the oldest Kubernetes still widely run; kubernetes-validate ships its schemas
SECRET = "jitbot-slack"
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|clang|make|cmake|build-essential|apt-get|apk|pip\d?)\b")


def procfile() -> dict[str, list[str]]:
    """Process type → its command line, as honcho reads the Procfile."""
    entries = (line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    return {name.strip(): shlex.split(command) for name, command in entries}


# --- Dockerfile -----------------------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [value for kind, value in self.instructions if kind == instruction]

    def env(self) -> dict[str, str]:
        pairs = (pair.split("=", 1) for value in self.values("ENV") for pair in shlex.split(value))
        return {key: value for key, value in pairs}


def dockerfile_stages() -> list[Stage]:
    parser = DockerfileParser(str(ROOT / "Dockerfile"))
    stages: list[Stage] = []
    for item in parser.structure:
        if item["instruction"] == "FROM":
            words = item["value"].split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name, parser.parent_images[len(stages)]))  # parent_images has ARGs substituted
        elif stages and item["instruction"] != "COMMENT":
            stages[-1].instructions.append((item["instruction"], item["value"]))
    return stages


def builder() -> Stage:
    [stage] = [s for s in dockerfile_stages() if s.name == "builder"]
    return stage


def final() -> Stage:
    return dockerfile_stages()[-1]


def entrypoint() -> list[str]:
    [value] = final().values("ENTRYPOINT")
    words: list[str] = json.loads(value)  # exec form: the process is PID 1 and gets SIGTERM itself
    return words


def dockerfile_uid() -> int:
    [user] = final().values("USER")
    return int(user.split(":")[0])


def test_dockerfile_final_stage_slim_python_311_and_not_root() -> None:
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", final().base)
    assert len(dockerfile_stages()) >= 2 and final().name != "builder"
    assert dockerfile_uid() != 0  # numeric: Kubernetes' runAsNonRoot can only verify a number


def test_dockerfile_final_stage_installs_no_build_tools_and_copies_only_the_venv() -> None:
    for command in final().values("RUN"):
        assert not BUILD_TOOLS.search(command), command
    venv = builder().env()["VIRTUAL_ENV"]
    assert final().values("COPY") == [f"--from=builder {venv} {venv}"]  # no source tree, no pip cache
    assert not final().values("ADD")
    assert builder().env()["PIP_NO_CACHE_DIR"] == "1"


def test_dockerfile_entrypoint_jitbot_on_path_web_by_default_port_3000() -> None:
    assert entrypoint() == ["jitbot"]
    assert json.loads(final().values("CMD")[0]) == ["web"]
    env = final().env()
    assert env["PATH"].startswith(builder().env()["VIRTUAL_ENV"] + "/bin:")
    assert env["PORT"] == "3000"


def test_dockerignore_keeps_secrets_catalog_and_local_state_out_of_the_image() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", "jitbot.yml", ".jitbot", ".git", ".venv"} <= ignored


def copy_into(workdir: Path, args: str) -> None:
    """Docker's COPY from the build context, for the plain forms the builder uses (files into a directory, a
    directory's contents into a directory), leaving out what .dockerignore does (bytecode)."""
    *sources, destination = shlex.split(args)
    assert not any(source.startswith("--") for source in sources), f"replay does not know COPY {args}"
    target = workdir / destination
    for source in (ROOT / name for name in sources):
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / source.name)


@pytest.mark.timeout(900)
def test_dockerfile_builder_steps_install_a_jitbot_that_runs(tmp_path: Path) -> None:
    """The builder stage replayed outside a container: its COPYs, its ENV (the venv in tmp_path; pip's cache kept,
    unlike in the image) and its RUNs verbatim, with a Python 3.11 first on PATH. Then the console command."""
    workdir, venv = tmp_path / "src", tmp_path / "venv"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for kind, value in builder().instructions:
        if kind == "WORKDIR":
            workdir.mkdir(parents=True, exist_ok=True)
        elif kind == "ENV":
            env |= {key: value for key, value in builder().env().items() if key != "PIP_NO_CACHE_DIR"}
            env["VIRTUAL_ENV"] = str(venv)
        elif kind == "COPY":
            copy_into(workdir, value)
        elif kind == "RUN":
            subprocess.run(["sh", "-c", value], cwd=workdir, env=env, check=True, capture_output=True, timeout=800)
        else:
            pytest.fail(f"the replay does not know {kind} {value}: teach it, so that it stays the same steps")
    helped = subprocess.run([venv / "bin" / "jitbot", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert all(name in helped.stdout for name in procfile())
    # every process type's code (and the package data) came with the wheel, not from the checkout
    probe = "import jitbot, jitbot.web, jitbot.sweeper, workers.worker; print(jitbot.__file__)"
    imported = subprocess.run([venv / "bin" / "python", "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    installed = Path(imported.stdout.strip()).parent
    assert installed.is_relative_to(venv) and (installed / "ops" / "demo.yml").is_file()


# --- compose.yaml ---------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def compose_validator() -> jsonschema.Draft202012Validator:
    """The Compose Specification's own schema (compose-spec/compose-spec, schema/compose-spec.json), as the
    check-jsonschema package vendors it under its licence (Apache-2.0)."""
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_compose_valid_against_the_compose_specification() -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in compose_validator().iter_errors(compose())]
    assert errors == []


def test_compose_schema_refuses_a_typo() -> None:
    broken = compose()
    broken["services"]["worker"]["comand"] = broken["services"]["worker"].pop("command")
    assert not compose_validator().is_valid(broken)


def test_compose_redis_appends_to_disk_and_never_evicts() -> None:
    redis = compose()["services"]["redis"]
    assert redis["image"] == "redis:7"
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    [volume] = [v.split(":") for v in redis["volumes"]]
    assert volume[0] in compose()["volumes"] and volume[1] == "/data"


def test_compose_runs_every_procfile_entry_from_one_image() -> None:
    services = compose()["services"]
    web = services["web"]
    for name, command in procfile().items():
        service = services[name]
        assert (service["build"], service["image"]) == (web["build"], web["image"])
        assert service["build"]["dockerfile"] == "Dockerfile" and "entrypoint" not in service
        assert entrypoint() + service["command"] == command
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert service["env_file"] == [{"path": ".env", "required": True}]
        [catalog] = service["volumes"]
        assert (catalog["source"], catalog["read_only"]) == ("./jitbot.yml", True)
        assert catalog["target"] == service["environment"]["JITBOT_CONFIG"]


def test_compose_web_publishes_its_port_and_checks_readyz_without_curl() -> None:
    web = compose()["services"]["web"]
    port = web["environment"]["PORT"]
    assert any(mapping.endswith(f":{port}") for mapping in web["ports"])
    test = web["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"] and "urllib" in test[3] and "/readyz" in test[3]


def test_env_file_documented_and_never_committed() -> None:
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^SLACK_BOT_TOKEN=", example, re.M) and re.search(r"^SLACK_SIGNING_SECRET=", example, re.M)
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


# --- deploy/kubernetes ----------------------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return loaded


def manifests() -> list[dict[str, Any]]:
    return [
        document
        for name in kustomization()["resources"]
        for document in yaml.safe_load_all((KUBERNETES / name).read_text())
        if document
    ]


def deployments() -> dict[str, dict[str, Any]]:
    """Process type (its container's args) → Deployment."""
    found = [m for m in manifests() if m["kind"] == "Deployment"]
    return {" ".join(d["spec"]["template"]["spec"]["containers"][0]["args"]): d for d in found}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def the_one(kind: str) -> dict[str, Any]:
    [found] = [m for m in manifests() if m["kind"] == kind]
    return found


def test_kustomization_lists_every_manifest() -> None:
    files = {path.name for path in KUBERNETES.glob("*.y*ml")} - {"kustomization.yaml"}
    assert sorted(files) == sorted(kustomization()["resources"])


@pytest.mark.parametrize("manifest", manifests(), ids=lambda m: f"{m['kind']}/{m['metadata']['name']}")
def test_kubernetes_manifest_valid_against_the_api_schemas(manifest: dict[str, Any]) -> None:
    assert kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION
    assert "namespace" not in manifest["metadata"]  # `kubectl apply -k … -n <yours>` chooses it


def test_kubernetes_validation_refuses_a_typo() -> None:
    broken = deployments()["web"]  # read afresh from the file
    probe = broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpget"] = probe.pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError, match="httpget"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kubernetes_web_probes_livez_and_readyz_on_the_port_PORT_names() -> None:
    web = container(deployments()["web"])
    port = int(by_name(web["env"])["PORT"]["value"])
    [http] = [p for p in web["ports"] if p["containerPort"] == port]
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        assert web[probe]["httpGet"]["path"] == path
        assert web[probe]["httpGet"]["port"] in (http["name"], port)
    service = the_one("Service")
    assert service["spec"]["selector"] == deployments()["web"]["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] in (http["name"], port)
    assert deployments()["web"]["spec"]["replicas"] == 2


def test_kubernetes_deployments_run_one_image_with_the_procfile_commands() -> None:
    assert deployments().keys() == procfile().keys()
    for name, deployment in deployments().items():
        spec = container(deployment)
        assert "command" not in spec  # it would replace the image's ENTRYPOINT
        assert entrypoint() + spec["args"] == procfile()[name]
        assert spec["image"] == container(deployments()["web"])["image"]
    assert {image["name"] for image in kustomization()["images"]} == {container(deployments()["web"])["image"]}


def test_kubernetes_worker_and_sweeper_no_http_probes_time_to_finish_a_revocation() -> None:
    for name in ("worker", "sweeper"):
        spec = container(deployments()[name])
        assert not {"ports", "livenessProbe", "readinessProbe", "startupProbe"} & spec.keys()
        assert deployments()[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


def test_kubernetes_secret_holds_exactly_the_keys_the_containers_reference() -> None:
    secret = the_one("Secret")
    assert secret["metadata"]["name"] == SECRET
    referenced = set()
    for deployment in deployments().values():
        spec = container(deployment)
        assert "envFrom" not in spec
        refs = [e["valueFrom"]["secretKeyRef"] for e in spec["env"] if "secretKeyRef" in e.get("valueFrom", {})]
        assert {ref["name"] for ref in refs} == {SECRET}
        referenced |= {ref["key"] for ref in refs}
    assert referenced == set(secret["stringData"]) == {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "REDIS_URL"}


def test_kubernetes_containers_non_root_read_only_bounded() -> None:
    for deployment in deployments().values():
        pod = deployment["spec"]["template"]["spec"]
        spec = container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == dockerfile_uid()
        context = spec["securityContext"]
        assert (context["readOnlyRootFilesystem"], context["allowPrivilegeEscalation"]) == (True, False)
        for bound in ("requests", "limits"):
            assert spec["resources"][bound].keys() == {"cpu", "memory"}
        mounts = {mount["mountPath"]: mount["name"] for mount in spec["volumeMounts"]}
        assert "emptyDir" in by_name(pod["volumes"])[mounts["/tmp"]]  # the one writable place


def test_kubernetes_catalog_mounted_where_JITBOT_CONFIG_points_and_loads(tmp_path: Path) -> None:
    config_map = the_one("ConfigMap")
    (tmp_path / "jitbot.yml").write_text(config_map["data"]["jitbot.yml"])
    assert load_catalog(str(tmp_path / "jitbot.yml")).resources
    for deployment in deployments().values():
        pod, spec = deployment["spec"]["template"]["spec"], container(deployment)
        [mount] = [m for m in spec["volumeMounts"] if m["mountPath"] != "/tmp"]
        assert mount["readOnly"] is True
        assert by_name(pod["volumes"])[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
        assert by_name(spec["env"])["JITBOT_CONFIG"]["value"] == f"{mount['mountPath']}/jitbot.yml"
