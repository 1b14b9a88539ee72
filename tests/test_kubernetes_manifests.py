"""contrib/kubernetes/ checked without a cluster: schemas, cross-references, flags, the zone.

The manifests are built here as kustomize would (resources, secretGenerator, the namespace,
JSON 6902 patches of a component), without kustomize: a CI machine has no kubectl. Each
document is then validated against the Kubernetes OpenAPI schemas that `kubernetes-validate`
bundles (strict: an unknown field such as `readinesProbe` is an error), for the oldest
Kubernetes the manifests claim and the newest the package knows. What a schema cannot see is
checked by hand: every ConfigMap, Secret, key and volume a pod uses exists; the container's
arguments parse with `geodns serve`'s own parser and every file they name is in a mount;
the Services reach container ports of the right protocol; the zone in the ConfigMap loads
as `geodns check` loads it. Where kubectl is installed, its kustomize build is compared
with ours and validated too.
"""

from __future__ import annotations

import argparse
import base64
import copy
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from geodns.cli import build_parser
from geodns.zones.loader import load_zones
from tests.conftest import REQUIRE_TOOLS, ROOT

K8S = ROOT / "contrib" / "kubernetes"

# Mixed-protocol LoadBalancer Services (UDP and TCP on one) are GA from 1.26.
OLDEST_KUBERNETES = "1.27"

# The builds a platform team can apply: the base, and the base with each component.
COMPONENTS = sorted(
    p.parent.name
    for p in K8S.glob("*/kustomization.yaml")
    if yaml.safe_load(p.read_text())["kind"] == "Component"
)
BUILDS = [(), *((name,) for name in COMPONENTS)]

Doc = dict[str, Any]


def _kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        why = "kubernetes-validate is not installed (pip install kubernetes-validate)"
        if REQUIRE_TOOLS:
            pytest.fail(f"{why}; it is required (GEODNS_REQUIRE_TOOLS=1)")
        pytest.skip(why)
    return kubernetes_validate


# Building as kustomize does


def _secret_file(root: Path, relative: str) -> Path:
    """A generator's file, or its committed `.example` twin when the real one is not made."""
    path = root / relative
    return path if path.exists() else path.with_name(path.name + ".example")


def _generated_secret(root: Path, generator: Doc) -> Doc:
    data = {}
    for entry in generator["files"]:
        key, _, relative = entry.partition("=")
        content = _secret_file(root, relative).read_bytes()
        data[key] = base64.b64encode(content).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": generator["name"]},
        "type": "Opaque",
        "data": data,
    }


def _json_patch(doc: Doc, ops: list[Doc]) -> None:
    """RFC 6902 `add` and `replace`, the two operations the components use."""
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target: Any = doc
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        last = parts[-1]
        if op["op"] not in ("add", "replace"):
            raise AssertionError(f"{op['path']}: operation {op['op']!r} is not handled here")
        if isinstance(target, list):
            if last == "-":
                target.append(op["value"])
            elif op["op"] == "add":
                target.insert(int(last), op["value"])
            else:
                target[int(last)] = op["value"]
        else:
            if op["op"] == "replace":
                assert last in target, f"{op['path']}: nothing to replace"
            target[last] = op["value"]


def _load_kustomization(root: Path) -> tuple[Doc, list[Doc]]:
    """The kustomization in `root` and the documents its resources and generators make."""
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    docs: list[Doc] = []
    for resource in kustomization.get("resources", []):
        docs += [d for d in yaml.safe_load_all((root / resource).read_text()) if d]
    docs += [_generated_secret(root, g) for g in kustomization.get("secretGenerator", [])]
    return kustomization, docs


def build(components: tuple[str, ...] = ()) -> list[Doc]:
    """contrib/kubernetes/ with `components` enabled, as `kubectl kustomize` would build it
    (without the hash suffix it gives generated names)."""
    kustomization, docs = _load_kustomization(K8S)
    for name in components:
        component, extra = _load_kustomization(K8S / name)
        docs += extra
        for patch in component.get("patches", []):
            target = patch["target"]
            matched = [
                d
                for d in docs
                if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]
            ]
            assert matched, f"{name}: the patch target {target} is not in the build"
            for doc in matched:
                _json_patch(doc, yaml.safe_load(patch["patch"]))
    namespace = kustomization.get("namespace")
    for doc in docs:
        if namespace and doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = namespace
    return docs


def _build_id(components: tuple[str, ...]) -> str:
    return "+".join(("base", *components))


def _find(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert found, f"no {kind} {name!r} in the build"
    return found[0]


def _workloads(docs: list[Doc]) -> Iterator[Doc]:
    return (d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet"))


def _geodns_container(docs: list[Doc]) -> tuple[Doc, Doc]:
    pod = _find(docs, "Deployment", "geodns")["spec"]["template"]["spec"]
    return pod, next(c for c in pod["containers"] if c["name"] == "geodns")


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# Schemas


@pytest.mark.parametrize("components", BUILDS, ids=_build_id)
@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, "newest"])
def test_every_document_validates_against_the_kubernetes_schema(
    components: tuple[str, ...], version: str
) -> None:
    kv = _kubernetes_validate()
    if version == "newest":
        version = kv.utils.latest_version()
    errors = []
    for doc in build(components):
        where = f"{doc['kind']} {doc['metadata']['name']}"
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path)
            errors.append(f"{where}: {path}: {exc.message}")
        except kv.SchemaNotFoundError as exc:
            errors.append(f"{where}: {exc.message}")
    assert not errors, f"against Kubernetes {version}:\n" + "\n".join(errors)


def test_the_schema_check_catches_a_misspelt_field() -> None:
    kv = _kubernetes_validate()
    deployment = copy.deepcopy(_find(build(), "Deployment", "geodns"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kv.ValidationError, match="readinesProbe"):
        kv.validate(deployment, OLDEST_KUBERNETES, strict=True)


# The kustomization itself


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_secrets_are_made_from_uncommitted_files_with_placeholder_examples() -> None:
    """A placeholder can never be applied as a real secret: the generators read files that
    .gitignore keeps out of git, beside `.example` files that only say REPLACE."""
    ignored = {
        line.strip().lstrip("/")
        for line in (K8S / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for root in [K8S, *(K8S / c for c in COMPONENTS)]:
        kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
        for generator in kustomization.get("secretGenerator", []):
            for entry in generator["files"]:
                relative = entry.partition("=")[2]
                path = (root / relative).relative_to(K8S).as_posix()
                assert path in ignored, f"{path} is not in contrib/kubernetes/.gitignore"
                example = root / (relative + ".example")
                assert "REPLACE" in example.read_text(), f"{example}: no REPLACE marker"


# Cross-references


@pytest.mark.parametrize("components", BUILDS, ids=_build_id)
def test_every_configmap_secret_and_key_a_pod_uses_exists(components: tuple[str, ...]) -> None:
    docs = build(components)
    data = {
        (d["kind"], d["metadata"]["name"]): set(d.get("data", {}))
        for d in docs
        if d["kind"] in ("ConfigMap", "Secret")
    }

    def check(kind: str, name: str, key: str | None, where: str) -> None:
        assert (kind, name) in data, f"{where}: {kind} {name!r} is not in the kustomization"
        if key is not None:
            assert key in data[kind, name], f"{where}: {kind} {name!r} has no key {key!r}"

    for workload in _workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        where = f"{workload['kind']} {workload['metadata']['name']}"
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        for volume in volumes.values():
            if "configMap" in volume:
                check("ConfigMap", volume["configMap"]["name"], None, where)
            if "secret" in volume:
                check("Secret", volume["secret"]["secretName"], None, where)
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes.keys() | claims, (
                    f"{where}: mount of undeclared volume {mount['name']!r}"
                )
            for env in container.get("env", []):
                source = env.get("valueFrom", {})
                if "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    check("ConfigMap", ref["name"], ref["key"], f"{where} env {env['name']}")
                if "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    check("Secret", ref["name"], ref["key"], f"{where} env {env['name']}")
            for env_from in container.get("envFrom", []):
                if "configMapRef" in env_from:
                    check("ConfigMap", env_from["configMapRef"]["name"], None, where)
                if "secretRef" in env_from:
                    check("Secret", env_from["secretRef"]["name"], None, where)


def test_every_selector_selects_pods() -> None:
    docs = build()
    pod_labels = [w["spec"]["template"]["metadata"]["labels"] for w in _workloads(docs)]
    for workload in _workloads(docs):
        selector = workload["spec"]["selector"]["matchLabels"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert _matches(selector, labels), f"{workload['metadata']['name']}: selector"
    for doc in docs:
        if doc["kind"] == "Service":
            selector = doc["spec"]["selector"]
        elif doc["kind"] in ("PodDisruptionBudget", "NetworkPolicy"):
            key = "selector" if doc["kind"] == "PodDisruptionBudget" else "podSelector"
            selector = doc["spec"][key]["matchLabels"]
        else:
            continue
        name = f"{doc['kind']} {doc['metadata']['name']}"
        assert any(_matches(selector, labels) for labels in pod_labels), f"{name} selects none"


def _container_ports(docs: list[Doc], selector: dict[str, str]) -> list[Doc]:
    ports = []
    for workload in _workloads(docs):
        if _matches(selector, workload["spec"]["template"]["metadata"]["labels"]):
            for container in workload["spec"]["template"]["spec"]["containers"]:
                ports += container.get("ports", [])
    return ports


def test_services_reach_container_ports_of_the_same_protocol() -> None:
    docs = build()
    for service in (d for d in docs if d["kind"] == "Service"):
        ports = _container_ports(docs, service["spec"]["selector"])
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            protocol = port.get("protocol", "TCP")
            found = [
                p
                for p in ports
                if target in (p.get("name"), p["containerPort"])
                and p.get("protocol", "TCP") == protocol
            ]
            assert found, (
                f"Service {service['metadata']['name']} port {port['name']}: no {protocol} "
                f"container port {target!r}"
            )


def test_dns_is_port_53_outside_and_unprivileged_inside() -> None:
    docs = build()
    service = _find(docs, "Service", "geodns")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"  # GeoIP needs the source
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} == {
        (53, "UDP"),
        (53, "TCP"),
    }
    _, container = _geodns_container(docs)
    dns = {(p["containerPort"], p["protocol"]) for p in container["ports"] if "dns" in p["name"]}
    assert dns == {(5300, "UDP"), (5300, "TCP")}


# The container's command line


def _serve_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    subparsers = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )  # argparse has no public way to reach a subcommand's parser
    return subparsers.choices["serve"]


def _expand(arg: str, container: Doc) -> str:
    """`$(VAR)` as the kubelet expands it, from the container's env; VAR must be there."""
    defined = {e["name"] for e in container.get("env", [])}

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in defined, f"{arg}: $({name}) is not in the container's env"
        return f"<{name}>"

    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, arg)


def _serve_args(components: tuple[str, ...]) -> tuple[Doc, Doc, list[str]]:
    pod, container = _geodns_container(build(components))
    args = [_expand(a, container) for a in container["args"]]
    assert args[0] == "serve", "the image's entrypoint is `geodns`; args start with the command"
    return pod, container, args[1:]


@pytest.mark.parametrize("components", BUILDS, ids=_build_id)
def test_container_args_are_flags_geodns_serve_knows(components: tuple[str, ...]) -> None:
    _, _, args = _serve_args(components)
    parser = _serve_parser()
    known = {s for a in parser._actions for s in a.option_strings}
    for arg in args:
        assert arg.startswith("--") and "=" in arg, f"{arg}: write flags as --flag=value"
    flags = {a.partition("=")[0] for a in args}
    unknown = flags - known
    assert not unknown, f"`geodns serve` has no {sorted(unknown)}"
    # They parse (types, choices) with its own parser.
    parser.parse_args(args)


def _mount_of(path: str, container: Doc) -> Doc | None:
    mounts = sorted(container["volumeMounts"], key=lambda m: -len(m["mountPath"]))
    for mount in mounts:
        if PurePosixPath(path).is_relative_to(mount["mountPath"]):
            return mount
    return None


# Flags naming a file or directory, and whether geodns writes there.
PATH_FLAGS = {
    "--zones": False,
    "--admin-token-file": False,
    "--cookie-secret-file": False,
    "--geoip-database": False,
    "--store-cacert": False,
    "--store-cert": False,
    "--store-key": False,
    "--store-password-file": False,
    "--state-dir": True,
    "--scope-cache": True,
    "--rollouts-file": True,
}


@pytest.mark.parametrize("components", BUILDS, ids=_build_id)
def test_every_path_in_the_args_is_in_a_mount(components: tuple[str, ...]) -> None:
    """Files are keys of the mounted Secret or ConfigMap; written directories are writable
    (the root filesystem is read-only)."""
    docs = build(components)
    pod, container, args = _serve_args(components)
    volumes = {v["name"]: v for v in pod["volumes"]}
    for arg in args:
        flag, _, value = arg.partition("=")
        if flag not in PATH_FLAGS:
            continue
        mount = _mount_of(value, container)
        assert mount is not None, f"{arg}: not inside any volumeMount"
        volume = volumes[mount["name"]]
        if PATH_FLAGS[flag]:
            assert "emptyDir" in volume and not mount.get("readOnly"), f"{arg}: not writable"
            continue
        relative = PurePosixPath(value).relative_to(mount["mountPath"])
        if "secret" in volume:
            source = _find(docs, "Secret", volume["secret"]["secretName"])
        elif "configMap" in volume:
            source = _find(docs, "ConfigMap", volume["configMap"]["name"])
        else:
            continue
        if str(relative) != ".":
            assert str(relative) in source["data"], f"{arg}: no key {relative} in its volume"


def test_the_pod_runs_locked_down() -> None:
    pod, container = _geodns_container(build())
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int)  # the image's USER is a name
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "admin"}


# The zone


def test_the_zone_configmap_loads_as_geodns_check_loads_it(tmp_path: Path) -> None:
    zones = _find(build(), "ConfigMap", "geodns-zones")
    for name, text in zones["data"].items():
        assert name.endswith((".yaml", ".yml")), f"{name}: the loader reads *.yaml only"
        (tmp_path / name).write_text(text)
    loaded = load_zones([tmp_path])
    assert len(loaded.zones) == len(zones["data"])
    for zone in loaded.zones.values():
        assert zone.services, f"{zone.origin}: the example should show a service"


# kustomize itself, where kubectl is installed


def _kustomize(tmp_path: Path, components: tuple[str, ...]) -> list[Doc]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: our own build is checked, not kustomize's")
    copy_ = tmp_path / "kubernetes"
    shutil.copytree(K8S, copy_)
    for example in copy_.rglob("*.example"):
        if not example.with_suffix("").exists():  # as _secret_file() reads it
            example.with_suffix("").write_bytes(example.read_bytes())
    if components:
        kustomization = copy_ / "kustomization.yaml"
        doc = yaml.safe_load(kustomization.read_text())
        doc["components"] = list(components)
        kustomization.write_text(yaml.safe_dump(doc))
    env = {**os.environ, "KUBECONFIG": os.devnull}  # never a cluster
    out = subprocess.run(
        [kubectl, "kustomize", str(copy_)], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _as_ours(docs: list[Doc]) -> list[Doc]:
    """Generated names lose their content hash (name-abc123xyz -> name), and Secret data
    its line breaks (kustomize folds base64 at 76 characters)."""
    for doc in docs:
        if doc["kind"] == "Secret":
            doc["data"] = {k: "".join(v.split()) for k, v in doc["data"].items()}
    generated = {
        d["metadata"]["name"]: re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"])
        for d in docs
        if d["kind"] == "Secret"
    }
    text = yaml.safe_dump_all(docs)
    for hashed, plain in generated.items():
        text = text.replace(hashed, plain)
    return list(yaml.safe_load_all(text))


def _normalized(docs: list[Doc]) -> list[str]:
    return sorted(yaml.safe_dump(d, sort_keys=True) for d in docs)


@pytest.mark.parametrize("components", BUILDS, ids=_build_id)
def test_kustomize_builds_what_these_tests_check(
    tmp_path: Path, components: tuple[str, ...]
) -> None:
    built = _as_ours(_kustomize(tmp_path, components))
    assert _normalized(built) == _normalized(build(components))
