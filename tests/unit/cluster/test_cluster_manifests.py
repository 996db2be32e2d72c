"""Every YAML under cluster/ and jobs/ and every JSON under jobs/deepspeed/ and dashboards/ parses, and the
values that must agree across files do: the container image and its Ray version, ports, shared-storage paths,
the MLflow URI, Secret references, and the job files named by submit lines and by the RayJob. Pure parsing:
nothing is started, no cluster or network is needed."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from laborlm.cli import build_parser
from laborlm.jobs import JOBS as KINDS
from laborlm.jobs import load_job
from laborlm.tracking import metric_names

ROOT = Path(__file__).resolve().parents[3]
CLUSTER = ROOT / "cluster"
JOBS = ROOT / "jobs"
LAUNCHER = CLUSTER / "launcher" / "gpu-aws.yaml"
RAYCLUSTER = CLUSTER / "kuberay" / "raycluster.yaml"
RAYJOB = CLUSTER / "kuberay" / "rayjob.yaml"
MLFLOW = CLUSTER / "mlflow" / "mlflow.yaml"
SECRETS_EXAMPLE = CLUSTER / "mlflow" / "secrets.example.yaml"
DASHBOARD = ROOT / "dashboards" / "grafana" / "laborlm.json"

CLUSTER_YAML = sorted(CLUSTER.rglob("*.yaml")) + sorted(CLUSTER.rglob("*.yml"))
JOB_YAML = sorted(JOBS.glob("*.yaml"))
JSON_FILES = sorted((JOBS / "deepspeed").glob("*.json")) + sorted((ROOT / "dashboards").rglob("*.json"))
K8S_MANIFESTS = [p for p in CLUSTER_YAML if p != LAUNCHER]
NAMESPACE = "laborlm"
GCS_PORT, DASHBOARD_PORT = 6379, 8265  # Ray's defaults, used by every file below
# A job header's submit line: through a tunnel or port-forward to the head's dashboard on this machine.
SUBMIT_PREFIX = f"ray job submit --address http://127.0.0.1:{DASHBOARD_PORT} --working-dir . -- "
SENSITIVE_ENV = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)


# --- helpers ------------------------------------------------------------------------------------------------


def _docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _one(path: Path, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in _docs(path) if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{path.name}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _pod_specs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every pod spec of a manifest: pod templates of workloads, and the head and worker groups of Ray CRs."""
    for node in _walk(doc):
        if isinstance(node, dict) and isinstance(node.get("template"), dict):
            spec = node["template"].get("spec")
            if isinstance(spec, dict) and "containers" in spec:
                yield spec


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for spec in _pod_specs(doc) for c in spec["containers"]]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _ray_specs() -> dict[str, dict[str, Any]]:
    return {
        "raycluster.yaml": _one(RAYCLUSTER, "RayCluster")["spec"],
        "rayjob.yaml": _one(RAYJOB, "RayJob")["spec"]["rayClusterSpec"],
    }


def _ray_containers() -> list[dict[str, Any]]:
    return [c for spec in _ray_specs().values() for c in _containers({"spec": spec})]


def _groups(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [spec["headGroupSpec"], *spec["workerGroupSpecs"]]


def _pinned(package: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and name.strip().lower() == package:
            return version.strip()
    raise AssertionError(f"constraints.txt pins no {package}")


def _flag(command: str, name: str) -> str:
    found = re.findall(rf"--{name}[= ](\S+)", command)
    assert len(found) == 1, f"expected one --{name} in {command!r}"
    return found[0]


def _launcher() -> dict[str, Any]:
    return _docs(LAUNCHER)[0]  # type: ignore[no-any-return]


def _launcher_env() -> dict[str, str]:
    env = {}
    for option in _launcher()["docker"]["run_options"]:
        flag, _, value = option.partition(" ")
        if flag in ("--env", "-e"):
            key, _, val = value.partition("=")
            env[key] = val
    return env


def _shared_mount() -> str:
    """The shared volume's mount path, the same in every Ray container (and the launcher's bind mount)."""
    spec = _ray_specs()["raycluster.yaml"]
    pod = spec["headGroupSpec"]["template"]["spec"]
    claims = {v["name"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    mounts = {m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"] if m["name"] in claims}
    assert len(mounts) == 1, f"the head mounts its shared claim at {mounts}"
    return mounts.pop()


def _under(path: str, root: str) -> bool:
    return PurePosixPath(path).is_relative_to(PurePosixPath(root))


def _header(path: Path) -> list[str]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return lines


def _laborlm_command(line: str) -> list[str] | None:
    """The `laborlm ...` argv of a submit line (``ray job submit ... -- laborlm ...`` or ``laborlm submit ...``)."""
    if line.startswith(SUBMIT_PREFIX + "laborlm "):
        return shlex.split(line[len(SUBMIT_PREFIX) :], comments=True)
    if line.startswith("laborlm submit "):
        return shlex.split(line, comments=True)
    return None


def _job_config(job_file: Path, overrides: list[str]) -> Any:
    return load_job(job_file, overrides)[1]


def _paths(config: Any, prefix: str = "") -> Iterator[tuple[str, Path]]:
    """Every Path-typed value of a config dataclass, with its dotted key."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield from _paths(value, f"{prefix}{f.name}.")
        elif isinstance(value, Path):
            yield f"{prefix}{f.name}", value


def _entrypoint() -> tuple[Path, list[str]]:
    """The RayJob's job YAML (as a repository path) and its overrides."""
    argv = shlex.split(_one(RAYJOB, "RayJob")["spec"]["entrypoint"])
    assert argv[:2] == ["laborlm", "run"], f"the RayJob runs {argv[:2]}, not `laborlm run`"
    src = _env(_ray_containers()[0])["LABORLM_SRC"]
    assert _under(argv[2], src), f"{argv[2]} is not in the staged source {src}"
    return ROOT / PurePosixPath(argv[2]).relative_to(src), argv[3:]


# --- every file parses --------------------------------------------------------------------------------------


def test_the_files_are_there() -> None:
    for path in (LAUNCHER, RAYCLUSTER, RAYJOB, MLFLOW, SECRETS_EXAMPLE, DASHBOARD):
        assert path.is_file(), path
    assert len(JOB_YAML) >= 5 and len(JSON_FILES) >= 2


@pytest.mark.parametrize("path", K8S_MANIFESTS, ids=lambda p: str(p.relative_to(CLUSTER)))
def test_kubernetes_manifest_parses(path: Path) -> None:
    docs = _docs(path)
    assert docs, f"{path.name} is empty"
    names = set()
    for doc in docs:
        assert isinstance(doc, dict) and {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']} {doc['metadata'].get('name')}"
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in names, f"{path.name}: {key} twice"
        names.add(key)
        if doc["kind"] in ("RayCluster", "RayJob"):
            assert doc["apiVersion"] == "ray.io/v1"


@pytest.mark.parametrize("path", JOB_YAML, ids=lambda p: p.name)
def test_job_yaml_parses_with_a_known_kind(path: Path) -> None:
    docs = _docs(path)
    assert len(docs) == 1 and isinstance(docs[0], dict), f"{path.name}: one mapping expected"
    assert docs[0].get("kind") in KINDS, (
        f"{path.name}: kind {docs[0].get('kind')!r} is not in laborlm.jobs.JOBS"
    )


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_json_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


def test_launcher_passes_rays_own_validation() -> None:
    # What `ray up` does first: fill in Ray's defaults, then validate against Ray's cluster schema.
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(_launcher()))


# --- one image, one Ray -------------------------------------------------------------------------------------


def test_one_image_and_ray_version_everywhere() -> None:
    image = _launcher()["docker"]["image"]
    images = {c["image"] for c in _ray_containers()}
    assert images == {image}, f"launcher {image}, KubeRay {images}"
    repo, _, tag = image.rpartition(":")
    match = re.fullmatch(r"(\d+\.\d+\.\d+)-py3(\d+)-(gpu|cu\d+)", tag)
    assert repo == "rayproject/ray" and match, f"expected a rayproject/ray CUDA tag, got {image}"
    assert match[1] == _pinned("ray"), f"image Ray {match[1]} != constraints.txt ray {_pinned('ray')}"
    requires = re.search(r'requires-python\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert requires and SpecifierSet(requires[1]).contains(f"3.{match[2]}"), f"py3{match[2]} vs {requires}"
    for name, spec in _ray_specs().items():
        assert spec["rayVersion"] == _pinned("ray"), name


def test_rayjob_cluster_is_the_raycluster() -> None:
    cluster, job = _one(RAYCLUSTER, "RayCluster"), _one(RAYJOB, "RayJob")
    assert job["spec"]["rayClusterSpec"] == cluster["spec"]
    assert job["metadata"].get("annotations") == cluster["metadata"].get("annotations")


def test_kuberay_cluster_shape() -> None:
    for name, spec in _ray_specs().items():
        assert spec["enableInTreeAutoscaling"] is True, name
        assert spec["authOptions"]["mode"] == "token", name
        head = spec["headGroupSpec"]
        assert head["serviceType"] == "ClusterIP", name
        head_resources = head["template"]["spec"]["containers"][0]["resources"]
        assert "nvidia.com/gpu" not in {
            **head_resources.get("requests", {}),
            **head_resources.get("limits", {}),
        }
        gpu_groups = 0
        for group in spec["workerGroupSpecs"]:
            assert 0 <= group["minReplicas"] <= group.get("replicas", 0) <= group["maxReplicas"], group[
                "groupName"
            ]
            pod = group["template"]["spec"]
            limits = pod["containers"][0]["resources"]["limits"]
            if "nvidia.com/gpu" in limits:
                gpu_groups += 1
                assert int(limits["nvidia.com/gpu"]) > 0
                assert (
                    pod["containers"][0]["resources"]["requests"]["nvidia.com/gpu"]
                    == limits["nvidia.com/gpu"]
                )
                assert any(t["key"] == "nvidia.com/gpu" for t in pod.get("tolerations", [])), group[
                    "groupName"
                ]
        assert gpu_groups >= 1, f"{name}: no GPU worker group"


def test_every_ray_pod_installs_laborlm_then_starts_ray() -> None:
    for doc in (_one(RAYCLUSTER, "RayCluster"), _one(RAYJOB, "RayJob")):
        # Without this annotation KubeRay would replace our command with its own `ray start`.
        assert doc["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    for container in _ray_containers():
        script = "\n".join(container["args"])
        assert container["command"][:2] == ["/bin/bash", "-lc"]
        assert re.search(r"pip install .*-c \S*constraints\.txt", script), script
        assert script.rstrip().endswith("$KUBERAY_GEN_RAY_START_CMD"), script
    setup = " ".join(_launcher()["setup_commands"])
    assert re.search(r"pip install .*-c \S*constraints\.txt", setup), setup
    assert "." in _launcher()["file_mounts"].values(), "the launcher must copy this repository to the nodes"


# --- storage ------------------------------------------------------------------------------------------------


def test_shared_storage_agrees() -> None:
    mount = _shared_mount()
    pvc = _one(RAYCLUSTER, "PersistentVolumeClaim")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    for name, spec in _ray_specs().items():
        for group in _groups(spec):
            pod = group["template"]["spec"]
            claims = {
                v["name"]: v["persistentVolumeClaim"]["claimName"]
                for v in pod["volumes"]
                if "persistentVolumeClaim" in v
            }
            assert set(claims.values()) == {pvc["metadata"]["name"]}, f"{name}: {claims}"
            for container in pod["containers"]:
                mounted = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in claims}
                assert mounted == {mount}, f"{name} {group.get('groupName', 'head')}: {mounted}"
    for container in _ray_containers():
        env = _env(container)
        for key in ("LABORLM_SRC", "LABORLM_STORAGE", "PIP_CACHE_DIR"):
            assert _under(env[key], mount), f"{key}={env[key]} is not on the shared volume {mount}"
    assert f"--volume {mount}:{mount}" in _launcher()["docker"]["run_options"]
    mount_commands = " ".join(_launcher()["initialization_commands"])
    assert re.search(rf"mount -t nfs4 .* {re.escape(mount)}$", mount_commands), mount_commands


def test_rayjob_entrypoint_runs_a_job_yaml_of_this_repository_with_shared_paths() -> None:
    job_file, overrides = _entrypoint()
    assert job_file.parent == JOBS and job_file.is_file(), f"the RayJob runs {job_file}, not a file of jobs/"
    kind = yaml.safe_load(job_file.read_text())["kind"]
    assert kind in KINDS, f"`laborlm run` cannot run kind {kind!r}"
    config = _job_config(job_file, overrides)  # the overrides are valid keys with valid values
    mount, env = _shared_mount(), _env(_ray_containers()[0])
    # The RayJob has no --working-dir: every path must be absolute and on the shared volume.
    for key, path in _paths(config):
        assert path.is_absolute() and _under(str(path), mount), f"{key}={path}"
    values = dict(o.split("=", 1) for o in overrides)
    for key, value in values.items():
        if value.startswith("/"):
            assert _under(value, mount), f"{key}={value} is not on the shared volume {mount}"
    assert _under(config.checkpoint.storage_path, env["LABORLM_STORAGE"])
    assert config.tracking.tracking_uri == env["MLFLOW_TRACKING_URI"]
    deepspeed = PurePosixPath(str(config.strategy.deepspeed_config))
    assert (ROOT / deepspeed.relative_to(env["LABORLM_SRC"])).is_file(), deepspeed


def test_launcher_job_uses_the_launchers_storage_and_mlflow() -> None:
    lines = [
        cmd
        for line in _header(LAUNCHER)
        if (cmd := _laborlm_command(line.removeprefix("RAY_AUTH_MODE=token ")))
    ]
    assert len(lines) == 1, f"the launcher header should submit one job, found {lines}"
    argv = lines[0]
    assert argv[:2] == ["laborlm", "run"]
    job_file = ROOT / argv[2]
    config = _job_config(job_file, argv[3:])
    env, mount = _launcher_env(), _shared_mount()
    # Submitted with --working-dir .: a relative path is a file shipped with the repository, anything
    # else must be on the shared file system every node mounts.
    for key, path in _paths(config):
        ok = (ROOT / path).exists() if not path.is_absolute() else _under(str(path), mount)
        assert ok, f"{job_file.name}: {key}={path}"
    assert str(config.checkpoint.storage_path).startswith(env["LABORLM_STORAGE"].rstrip("/") + "/")
    assert config.tracking.tracking_uri == env["MLFLOW_TRACKING_URI"]


# --- ports and addresses ------------------------------------------------------------------------------------


def test_ray_ports_agree() -> None:
    metrics = set()
    for name, spec in _ray_specs().items():
        head = spec["headGroupSpec"]
        ports = {p["name"]: p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
        assert ports["gcs-server"] == GCS_PORT and ports["dashboard"] == DASHBOARD_PORT, f"{name}: {ports}"
        for group in _groups(spec):
            for container in group["template"]["spec"]["containers"]:
                port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
                assert int(group["rayStartParams"]["metrics-export-port"]) == port, name
                metrics.add(port)
    head_start = _launcher()["head_start_ray_commands"][-1]
    worker_start = _launcher()["worker_start_ray_commands"][-1]
    assert int(_flag(head_start, "port")) == GCS_PORT
    assert int(_flag(head_start, "dashboard-port")) == DASHBOARD_PORT
    assert _flag(head_start, "dashboard-host") == "127.0.0.1", (
        "the launcher's dashboard is reached by SSH tunnel"
    )
    assert _flag(worker_start, "address") == f"$RAY_HEAD_IP:{GCS_PORT}"
    metrics |= {
        int(_flag(head_start, "metrics-export-port")),
        int(_flag(worker_start, "metrics-export-port")),
    }
    assert len(metrics) == 1, f"Prometheus scrapes one metrics port, found {metrics}"
    policy = _one(RAYCLUSTER, "NetworkPolicy")
    allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule.get("ports", [])}
    assert allowed == metrics | {DASHBOARD_PORT}, allowed


def _mlflow_args() -> list[str]:
    container = _containers(_one(MLFLOW, "Deployment", "mlflow"))[0]
    return [*container["command"], *container["args"]]


def _arg(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_mlflow_ports_and_uris_agree() -> None:
    deployment, service = _one(MLFLOW, "Deployment", "mlflow"), _one(MLFLOW, "Service", "mlflow")
    args = _mlflow_args()
    container_port = _containers(deployment)[0]["ports"][0]["containerPort"]
    (svc_port,) = service["spec"]["ports"]
    assert int(_arg(args, "--port")) == container_port == svc_port["port"] == svc_port["targetPort"]
    # Binding every interface is needed inside the pod; the Service keeps it off the outside network.
    assert _arg(args, "--host") == "0.0.0.0" and service["spec"]["type"] == "ClusterIP"
    allowed = _arg(args, "--allowed-hosts").split(",")
    assert f"127.0.0.1:{svc_port['port']}" in allowed and f"localhost:{svc_port['port']}" in allowed
    in_cluster = f"{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    for uri in [_env(c)["MLFLOW_TRACKING_URI"] for c in _ray_containers()] + [
        _launcher_env()["MLFLOW_TRACKING_URI"]
    ]:
        parts = urlsplit(uri)
        assert parts.scheme == "http" and parts.port == svc_port["port"], uri
        assert parts.netloc in allowed, f"MLflow would reject Host {parts.netloc}"
    kuberay_uris = {urlsplit(_env(c)["MLFLOW_TRACKING_URI"]).hostname for c in _ray_containers()}
    assert kuberay_uris == {in_cluster}


def test_mlflow_backend_and_artifact_store_agree() -> None:
    args = _mlflow_args()
    backend = urlsplit(_arg(args, "--backend-store-uri"))
    assert backend.scheme.startswith("postgresql") and backend.username is None and backend.password is None
    postgres = _one(MLFLOW, "Service", backend.hostname)
    assert backend.port == postgres["spec"]["ports"][0]["port"]
    statefulset = _one(MLFLOW, "StatefulSet", backend.hostname)
    assert _env(_containers(statefulset)[0])["POSTGRES_DB"] == backend.path.lstrip("/")
    mlflow_env = _env(_containers(_one(MLFLOW, "Deployment", "mlflow"))[0])
    postgres_env = _env(_containers(statefulset)[0])
    assert mlflow_env["PGUSER"] == postgres_env["POSTGRES_USER"]
    assert mlflow_env["PGPASSWORD"] == postgres_env["POSTGRES_PASSWORD"]
    endpoint = urlsplit(mlflow_env["MLFLOW_S3_ENDPOINT_URL"])
    minio = _one(MLFLOW, "Service", endpoint.hostname)
    assert endpoint.port in {p["port"] for p in minio["spec"]["ports"]}
    bucket = urlsplit(_arg(args, "--artifacts-destination"))
    assert bucket.scheme == "s3"
    bucket_job = "\n".join(_containers(_one(MLFLOW, "Job"))[0]["args"])
    assert re.search(rf"mc mb .*/{re.escape(bucket.netloc)}\b", bucket_job), bucket_job
    assert f"{endpoint.scheme}://{endpoint.netloc}" in bucket_job
    image = _containers(_one(MLFLOW, "Deployment", "mlflow"))[0]["image"]
    assert image.rpartition(":")[2].removeprefix("v").split("-")[0] == _pinned("mlflow")


# --- credentials --------------------------------------------------------------------------------------------


def _example_secrets() -> dict[str, dict[str, str]]:
    return {
        d["metadata"]["name"]: {**d.get("stringData", {}), **d.get("data", {})}
        for d in _docs(SECRETS_EXAMPLE)
        if d["kind"] == "Secret"
    }


def test_secret_references_resolve_to_the_example() -> None:
    secrets, used = _example_secrets(), set()
    for path in K8S_MANIFESTS:
        for node in _walk(_docs(path)):
            if isinstance(node, dict) and "secretKeyRef" in node:
                ref = node["secretKeyRef"]
                assert ref["key"] in secrets.get(ref["name"], {}), f"{path.name}: {ref} is not in the example"
                used.add((ref["name"], ref["key"]))
            if isinstance(node, dict) and "secretRef" in node:
                assert node["secretRef"]["name"] in secrets, f"{path.name}: {node['secretRef']}"
    assert used == {(name, key) for name, keys in secrets.items() for key in keys}, "unused example keys"


def test_the_example_secret_holds_only_placeholders() -> None:
    assert "EXAMPLE ONLY" in SECRETS_EXAMPLE.read_text()
    for name, values in _example_secrets().items():
        for key, value in values.items():
            assert "CHANGE-ME" in value, f"{name}.{key} looks like a real value"


@pytest.mark.parametrize("path", CLUSTER_YAML + JOB_YAML, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_plaintext_credentials(path: Path) -> None:
    if path == SECRETS_EXAMPLE:
        return
    text = path.read_text(encoding="utf-8")
    assert not URL_WITH_PASSWORD.search(text), f"{path.name}: a URL carries a password"
    for node in _walk(_docs(path)):
        if not isinstance(node, dict):
            continue
        assert node.get("kind") != "Secret", f"{path.name}: Secrets belong in secrets.example.yaml only"
        if isinstance(node.get("name"), str) and SENSITIVE_ENV.search(node["name"]) and "value" in node:
            raise AssertionError(f"{path.name}: env {node['name']} has a literal value; use secretKeyRef")
        for key, value in node.items():
            if isinstance(key, str) and re.search(r"password|secret_?key", key, re.IGNORECASE):
                assert not isinstance(value, str | int), f"{path.name}: {key} is set in plain text"
    if path == LAUNCHER:  # AWS access comes from instance profiles; no credentials in docker run options
        assert not re.search(r"AWS_(SECRET_)?ACCESS_KEY|aws_access_key_id", text, re.IGNORECASE)
        assert not [k for k in _launcher_env() if SENSITIVE_ENV.search(k)], _launcher_env()


# --- Grafana ------------------------------------------------------------------------------------------------


def _dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _dashboard_panels(panel.get("panels", []))


def _ray_dashboard_names() -> set[str]:
    """Every ray_* name (metric or label) used by the Grafana dashboards that ship inside the installed Ray."""
    import importlib.util

    spec = importlib.util.find_spec("ray")
    assert spec and spec.submodule_search_locations
    folder = Path(spec.submodule_search_locations[0]) / "dashboard" / "modules" / "metrics" / "dashboards"
    return {name for f in folder.glob("*.py") for name in re.findall(r"\bray_[a-z0-9_]+", f.read_text())}


def test_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    source = {"type": "prometheus", "uid": "${datasource}"}
    queries = []
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == source, var["name"]
            queries.append(var["query"]["query"])
    panels = list(_dashboard_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] in ("row", "text"):
            assert "targets" not in panel, panel["title"]
            continue
        assert panel["datasource"] == source, panel["title"]
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == source and target["expr"].strip(), panel["title"]
            queries.append(target["expr"])
    used = {name for q in queries for name in re.findall(r"\bray_[a-z0-9_]+", q)}
    unknown = used - _ray_dashboard_names()
    assert not unknown, f"not names Ray exports (per its own dashboards): {sorted(unknown)}"
    assert any(n.startswith("ray_train_") for n in used) and any(n.startswith("ray_data_") for n in used)
    for name in ("ray_node_cpu_utilization", "ray_node_gpus_utilization", "ray_node_mem_used"):
        assert name in used, name
    # LaborLM's own keys appear only in text, and only keys that tracking/metric_names.py defines.
    known = {v for k, v in vars(metric_names).items() if k.isupper() and isinstance(v, str)}
    text = " ".join(p["options"]["content"] for p in panels if p["type"] == "text")
    mentioned = set(re.findall(r"`([a-z_]+/[a-z_]+)`", text))
    assert mentioned and mentioned <= known, f"not in metric_names.py: {sorted(mentioned - known)}"


# --- job headers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", JOB_YAML, ids=lambda p: p.name)
def test_job_header_gives_its_submit_line(path: Path) -> None:
    header = _header(path)
    assert header, f"{path.name} needs a comment header"
    commands = [cmd for line in header if (cmd := _laborlm_command(line))]
    assert commands, (
        f"{path.name}: no `{SUBMIT_PREFIX}laborlm ...` (or `laborlm submit ...`) line in the header"
    )
    kind = yaml.safe_load(path.read_text())["kind"]
    assert kind in KINDS, f"{path.name}: kind {kind!r}"
    rel = f"jobs/{path.name}"
    for argv in commands:
        args = build_parser().parse_args(argv[1:])  # the line is a valid laborlm command line
        if argv[1] == "submit":
            assert argv[2] == rel, f"{path.name}: the submit line names {argv[2]}"
        elif argv[1] == "run":  # every kind runs this way (laborlm.jobs)
            assert argv[2] == rel, f"{path.name}: expected `laborlm run {rel}`, got {argv}"
            if args.overrides:  # (the file itself is loaded by tests/unit/core/test_job_configs.py)
                load_job(path, list(args.overrides))
        else:  # the kind's own command, reading the file with --config (data synth, benchmark, quickstart)
            assert getattr(args, "config", None) == rel, f"{path.name}: the submit line names {argv}"


def test_readme_commands_are_valid_laborlm_command_lines() -> None:
    text = (CLUSTER / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    blocks = re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
    commands = [
        shlex.split(line, comments=True)
        for block in blocks
        for line in block.splitlines()
        if line.startswith("ray job submit ")
    ]
    assert len(commands) >= 6
    for argv in commands:
        laborlm = argv[argv.index("--") + 1 :]
        assert laborlm[0] == "laborlm", argv
        args = build_parser().parse_args(laborlm[1:])
        if laborlm[1] == "run":
            _job_config(ROOT / laborlm[2], list(args.overrides))
