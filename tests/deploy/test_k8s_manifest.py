"""examples/deploy/k8s.yaml loaded with PyYAML (python3-yaml) and deserialized into the
Kubernetes client's models (python3-kubernetes): every key a field of its model, checked
recursively against the models' attribute_map, so a misspelt or misplaced key fails here
instead of being dropped by the API server. Then what the deployment relies on: one GPU a
pod, the probes on the server's real endpoints, the drain, limits, a Service that selects
the pods.
"""
import os
import re

import pytest

yaml = pytest.importorskip("yaml", reason="python3-yaml")
kubernetes = pytest.importorskip("kubernetes", reason="python3-kubernetes")
from kubernetes import client  # noqa: E402

from test_dockerfiles import ROOT, assert_server_accepts  # noqa: E402

MANIFEST = os.path.join(ROOT, "examples", "deploy", "k8s.yaml")
MODELS = {"Deployment": "V1Deployment", "Service": "V1Service"}


def documents():
    with open(MANIFEST) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def unknown_fields(value, type_name, path="$"):
    """Keys of value that are not fields of the model type_name, recursively."""
    bad = []
    m = re.fullmatch(r"list\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            return [f"{path}: a list expected"]
        for k, item in enumerate(value):
            bad += unknown_fields(item, m.group(1), f"{path}[{k}]")
        return bad
    m = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if m:
        if not isinstance(value, dict):
            return [f"{path}: a mapping expected"]
        for k, item in value.items():
            bad += unknown_fields(item, m.group(1), f"{path}.{k}")
        return bad
    klass = getattr(client, type_name, None)
    if klass is None or not hasattr(klass, "attribute_map"):
        return bad  # str, int, bool, object (int-or-string), datetime
    if not isinstance(value, dict):
        return [f"{path}: a mapping expected for {type_name}"]
    by_json = {json_key: attr for attr, json_key in klass.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            bad.append(f"{path}.{key}: not a field of {type_name}")
            continue
        bad += unknown_fields(item, klass.openapi_types[by_json[key]], f"{path}.{key}")
    return bad


def deserialize(doc):
    api = client.ApiClient()
    return api._ApiClient__deserialize(doc, MODELS[doc["kind"]])


@pytest.fixture(scope="module")
def objects():
    docs = documents()
    assert sorted(d["kind"] for d in docs) == ["Deployment", "Service"]
    return {d["kind"]: (d, deserialize(d)) for d in docs}


def test_every_key_is_a_field_of_its_kubernetes_model(objects):
    for kind, (doc, obj) in objects.items():
        assert doc["apiVersion"] == {"Deployment": "apps/v1", "Service": "v1"}[kind]
        assert unknown_fields(doc, MODELS[kind]) == []
        assert type(obj).__name__ == MODELS[kind]


def test_the_unknown_field_check_finds_a_misplaced_key():
    doc = documents()[0]
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    doc["spec"]["template"]["spec"]["containers"][0]["resources"]["limit"] = {}
    bad = unknown_fields(doc, "V1Deployment")
    assert any("readinesProbe" in b for b in bad) and any(".limit:" in b for b in bad), bad


def container(objects):
    spec = objects["Deployment"][1].spec.template.spec
    assert len(spec.containers) == 1
    return spec, spec.containers[0]


def test_one_gpu_a_pod_with_resource_limits(objects):
    _, c = container(objects)
    limits, requests = c.resources.limits, c.resources.requests
    assert limits["nvidia.com/gpu"] in (1, "1")
    # Extended resources cannot be overcommitted: the request, if given, equals the limit.
    assert str(requests.get("nvidia.com/gpu", limits["nvidia.com/gpu"])) == str(limits["nvidia.com/gpu"])
    assert limits.get("cpu") and limits.get("memory")
    assert requests.get("cpu") and requests.get("memory")


def test_probes_use_the_servers_endpoints_on_its_port(objects):
    _, c = container(objects)
    args = c.args
    assert_server_accepts(args)
    port = int(dict(zip(args, args[1:]))["--port"])
    ports = {p.name: p.container_port for p in c.ports}
    assert ports["http"] == port
    for probe, path in ((c.startup_probe, "/ready"), (c.readiness_probe, "/ready"), (c.liveness_probe, "/health")):
        assert probe is not None and probe.http_get is not None
        assert probe.http_get.path == path
        assert probe.http_get.port in ("http", port)
    # The start-up probe leaves the model minutes to load and warm before liveness counts.
    assert c.startup_probe.period_seconds * c.startup_probe.failure_threshold >= 120
    with open(os.path.join(ROOT, "examples", "server", "http.c")) as f:
        http_c = f.read()
    for path in ("/ready", "/health"):
        assert f'"{path}"' in http_c


def test_drain_waits_in_pre_stop_within_the_grace_period(objects):
    spec, c = container(objects)
    pre = c.lifecycle.pre_stop
    # The client's model names the field _exec (exec is a Python keyword once).
    action = getattr(pre, "_exec", None) if pre is not None else None
    assert action is not None, "preStop runs a command"
    command = action.command
    assert command[0] == "/bin/sleep"
    # Then SIGTERM: the server drains for up to --drain-timeout (default 60 s); the
    # kubelet must not kill it before.
    args = list(c.args or [])
    drain = int(args[args.index("--drain-timeout") + 1]) if "--drain-timeout" in args else 60
    assert int(command[1]) + drain <= spec.termination_grace_period_seconds


def test_rolling_update_keeps_serving_and_the_service_selects_the_pods(objects):
    dep, svc = objects["Deployment"][1], objects["Service"][1]
    assert dep.spec.strategy.rolling_update.max_unavailable in (0, "0")
    labels = dep.spec.template.metadata.labels
    assert dep.spec.selector.match_labels.items() <= labels.items()
    assert svc.spec.selector.items() <= labels.items()
    _, c = container(objects)
    names = {p.name for p in c.ports}
    for p in svc.spec.ports:
        assert p.target_port in names or p.target_port in {q.container_port for q in c.ports}
