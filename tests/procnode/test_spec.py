"""Table tests for the process node's pure decisions (tests/procnode/spec.py)."""

from __future__ import annotations

import pytest

from tests.procnode import spec as s
from tests.procnode.podnet import PodNetPlan, PodSandbox


@pytest.mark.parametrize(("image", "repo", "entry"), [
    ("senseops/runtime:latest", "senseops/runtime", ["python", "-m", "senseops_runtime"]),
    ("127.0.0.1:5000/senseops/runtime@sha256:ab", "127.0.0.1:5000/senseops/runtime",
     ["python", "-m", "senseops_runtime"]),
    ("ccr.ccs.tencentyun.com/x/senseops/trainer:v1", "ccr.ccs.tencentyun.com/x/senseops/trainer",
     ["python", "-m", "senseops_trainer"]),
    ("gcr.io/go-containerregistry/crane:v0.22.1", "gcr.io/go-containerregistry/crane", ["crane"]),
    ("busybox:1.36", "busybox", None),
    ("myorg/senseops/runtimex:1", "myorg/senseops/runtimex", None),
])
def test_image_table(image: str, repo: str, entry: list[str] | None) -> None:
    assert s.image_repository(image) == repo
    assert s.image_entrypoint(image) == entry


@pytest.mark.parametrize(("text", "env", "want"), [
    ("$(A)-$(B)", {"A": "1", "B": "2"}, "1-2"),
    ("$(MISSING)", {}, "$(MISSING)"),
    ("$$(A)", {"A": "1"}, "$(A)"),
    ("plain $HOME", {"HOME": "x"}, "plain $HOME"),
])
def test_expand(text: str, env: dict[str, str], want: str) -> None:
    assert s.expand(text, env) == want


def test_container_argv_uses_command_then_image_table() -> None:
    assert s.container_argv({"command": ["sh", "-c"], "args": ["echo $(X)"]}, {"X": "hi"}) == \
        ["sh", "-c", "echo hi"]
    assert s.container_argv({"image": "senseops/trainer:1", "args": ["run", "$(JOB)"]}, {"JOB": "/j.yaml"}) == \
        ["python", "-m", "senseops_trainer", "run", "/j.yaml"]
    with pytest.raises(s.PodSpecError, match="give the container a command"):
        s.container_argv({"image": "busybox"}, {})


POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "a"}},
    "spec": {"nodeName": "n", "serviceAccountName": "sa",
             "containers": [{"name": "c", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"},
                                                         "limits": {"nvidia.com/gpu": "2"}}}]},
}


def test_container_env_sources_and_order() -> None:
    container = {
        "name": "c",
        "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": "2"}},
        "envFrom": [{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "missing", "optional": True}},
                    {"prefix": "S_", "secretRef": {"name": "sec"}}],
        "env": [
            {"name": "LIT", "value": "x-$(K1)"},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory", "divisor": "1Mi"}}},
            {"name": "GPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.nvidia.com/gpu"}}},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope", "optional": True}}},
        ],
    }
    source = s.EnvSource({"cm": {"K1": "v1"}}, {"sec": {"token": "t0k"}})
    env = s.container_env(POD, container, source, "198.18.0.20", "198.19.254.1", {"PATH": "/bin"})
    assert env["LIT"] == "x-v1"
    assert env["IP"] == "198.18.0.20"
    assert env["APP"] == "a"
    assert env["CPU"] == "1"  # 250m rounded up to whole cores, limits fall back to requests
    assert env["MEM"] == "1024"
    assert env["GPU"] == "2"
    assert env["KEY"] == "t0k"
    assert env["S_token"] == "t0k"
    assert "OPT" not in env
    assert env["KUBERNETES_SERVICE_HOST"] == s.KUBERNETES_SERVICE_IP
    assert env["HOSTNAME"] == "p"


def test_container_env_missing_required_reference_is_an_error() -> None:
    container = {"name": "c", "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}]}
    with pytest.raises(s.PodSpecError, match="secret 'x' key 'k' not found"):
        s.container_env(POD, container, s.EnvSource(), "", "", {})


def test_mounts_subpath_readonly_and_protection() -> None:
    container = {"volumeMounts": [
        {"name": "cfg", "mountPath": "/etc/app"},
        {"name": "data", "mountPath": "/data", "subPath": "a/b"},
        {"name": "model", "mountPath": "/models"},
        {"name": "data", "mountPath": "/ro", "readOnly": True},
    ]}
    dirs = {"cfg": "/v/cfg", "data": "/v/data", "model": "/img/x"}
    mounts = s.container_mounts(container, dirs, {"cfg", "model"}, ["/work/repo"])
    assert mounts == [s.Mount("/v/cfg", "/etc/app", True), s.Mount("/v/data/a/b", "/data", False),
                      s.Mount("/img/x", "/models", True), s.Mount("/v/data", "/ro", True)]
    for bad in ("/", "/work/repo"):
        with pytest.raises(s.PodSpecError, match="would hide"):
            s.container_mounts({"volumeMounts": [{"name": "cfg", "mountPath": bad}]}, dirs, set(), ["/work/repo"])
    # A mount above a protected path is allowed: the launcher binds the protected path back over it.
    above = s.container_mounts({"volumeMounts": [{"name": "cfg", "mountPath": "/work"}]}, dirs, set(), ["/work/repo"])
    assert s.hidden_by(above, ["/work/repo", "/opt/venv"]) == ["/work/repo"]
    with pytest.raises(s.PodSpecError, match="relative path"):
        s.container_mounts({"volumeMounts": [{"name": "cfg", "mountPath": "/x", "subPath": "../up"}]}, dirs, set(),
                           [])


def test_launch_argv_binds_hidden_paths_back_after_the_mounts() -> None:
    argv = s.launch_argv("ns1", [s.Mount("/vol/tmp", "/tmp", False)], None, ["python"], keep=["/tmp/ci/repo"])
    steps = argv[argv.index("-c") + 1].split("; ")
    source_aside = steps.index("mount --bind /vol/tmp /run/senseops-procnode-stash/v0")
    kept_aside = steps.index("mount --bind /tmp/ci/repo /run/senseops-procnode-stash/k0")
    mount = steps.index("mount --bind /run/senseops-procnode-stash/v0 /tmp")
    back = steps.index("mount --bind /run/senseops-procnode-stash/k0 /tmp/ci/repo")
    assert source_aside < mount and kept_aside < mount < back


def test_launch_argv_enters_netns_then_private_mounts() -> None:
    argv = s.launch_argv("ns1", [s.Mount("/src", "/dst", True)], "/work", ["/venv/python", "-m", "x"])
    assert argv[:8] == ["ip", "netns", "exec", "ns1", "unshare", "--mount", "--propagation", "private"]
    script = argv[argv.index("-c") + 1]
    assert "mount --bind /run/senseops-procnode-stash/v0 /dst" in script and "remount,bind,ro /dst" in script
    assert "mount --bind /src /run/senseops-procnode-stash/v0" in script and "cd /work" in script
    assert argv[-3:] == ["/venv/python", "-m", "x"]


@pytest.mark.parametrize(("count", "want"), [(0, 10), (1, 20), (2, 40), (4, 160), (5, 300), (9, 300)])
def test_restart_delay(count: int, want: float) -> None:
    assert s.restart_delay(count) == want


@pytest.mark.parametrize(("policy", "code", "want"), [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 3, True),
    ("Never", 1, False), ("Never", 0, False)])
def test_should_restart(policy: str, code: int, want: bool) -> None:
    assert s.should_restart(policy, code) is want


@pytest.mark.parametrize(("returncode", "code"), [(0, 0), (42, 42), (-15, 143), (-9, 137)])
def test_exit_codes(returncode: int, code: int) -> None:
    assert s.exit_code_of(returncode) == code


@pytest.mark.parametrize(("policy", "init_failed", "exits", "running", "phase"), [
    ("Never", False, {"a": None}, [], "Pending"),
    ("Never", False, {"a": None}, ["a"], "Running"),
    ("Never", False, {"a": 0, "b": None}, ["b"], "Running"),
    ("Never", False, {"a": 0, "b": 0}, [], "Succeeded"),
    ("Never", False, {"a": 0, "b": 42}, [], "Failed"),
    ("Never", True, {"a": None}, [], "Failed"),
    ("OnFailure", False, {"a": 1}, [], "Running"),
    ("OnFailure", False, {"a": 0}, [], "Succeeded"),
    ("Always", False, {"a": 0}, [], "Running"),
    ("Always", False, {"a": 1}, [], "Running"),
])
def test_pod_phase(policy: str, init_failed: bool, exits: dict[str, int | None], running: list[str],
                   phase: str) -> None:
    assert s.pod_phase(policy, init_failed, exits, running) == phase


def test_probe_thresholds() -> None:
    state = s.ProbeState()
    assert [state.record(ok, 2, 3) for ok in (True, True, True)] == [None, "pass", None]
    assert [state.record(ok, 2, 3) for ok in (False, False, True, False, False, False)] == \
        [None, None, None, None, None, "fail"]
    assert state.record(False, 2, 3) is None  # stays failed without flipping again
    fresh = s.ProbeState()
    assert [fresh.record(False, 1, 2) for _ in range(3)] == [None, "fail", None]


def test_resolve_named_port() -> None:
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 8000}]}
    assert s.resolve_port(container, "http") == 8000
    assert s.resolve_port(container, 9000) == 9000
    with pytest.raises(s.PodSpecError):
        s.resolve_port(container, "grpc")


@pytest.mark.parametrize(("value", "number"), [("250m", 0.25), ("2", 2.0), ("1Gi", 2.0**30), ("1.5k", 1500.0)])
def test_quantity(value: str, number: float) -> None:
    assert s.quantity(value) == number


@pytest.mark.parametrize(("index", "cidr", "host", "ns"), [
    (0, "198.18.0.0/22", "198.19.254.1", "198.19.254.2"),
    (1, "198.18.4.0/22", "198.19.254.5", "198.19.254.6"),
    (63, "198.18.252.0/22", "198.19.254.253", "198.19.254.254"),
])
def test_podnet_plan(index: int, cidr: str, host: str, ns: str) -> None:
    plan = PodNetPlan(index)
    assert (str(plan.pod_cidr), plan.host_ip, plan.ns_ip) == (cidr, host, ns)
    assert next(iter(plan.pod_ips())).startswith(cidr.rsplit(".", 2)[0])
    assert len(plan.host_veth) <= 15 and len(plan.ns_veth) <= 15
    with pytest.raises(ValueError):
        PodNetPlan(64)


def test_sandbox_commands_route_only_the_pod_address() -> None:
    box = PodSandbox("senseops-pn3-17", "sop3x17", "198.18.12.20", "198.19.254.13")
    cmds = [" ".join(c) for c in box.setup_commands()]
    assert "ip route replace 198.18.12.20/32 dev sop3x17" in cmds
    assert not any("default" in c for c in cmds)  # pods get no route off the machine
    assert len(box.host_veth) <= 15


@pytest.mark.parametrize(("spec", "name", "want"), [
    ({"hostname": "ftj-train-1", "subdomain": "ftj-workers"}, "ftj-train-1-abcde", "ftj-train-1"),
    ({"subdomain": "svc"}, "web-0", "web-0"),
    ({"hostname": "h" * 70}, "p", "h" * 63),
    ({}, "plain", None),
])
def test_pod_hostname(spec: dict, name: str, want: str | None) -> None:
    assert s.pod_hostname({"metadata": {"name": name}, "spec": spec}) == want


def test_hosts_file_lists_the_pod_and_its_subdomain_peers_only() -> None:
    own = s.HostEntry("198.18.12.20", "ftj-train-1", "ftj-workers")
    peers = [own, s.HostEntry("198.18.12.21", "ftj-train-0", "ftj-workers"),
             s.HostEntry("198.18.12.22", "other-0", "other"), s.HostEntry("198.18.12.23", "lone")]
    lines = s.hosts_file("ml", own, peers).splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert lines.count("198.18.12.20\tftj-train-1.ftj-workers.ml.svc.cluster.local\tftj-train-1.ftj-workers"
                       "\tftj-train-1") == 1
    assert "198.18.12.21\tftj-train-0.ftj-workers.ml.svc.cluster.local\tftj-train-0.ftj-workers\tftj-train-0" \
        in lines
    assert not any("198.18.12.22" in line or "198.18.12.23" in line for line in lines)
    # A pod with a host name but no subdomain knows only itself.
    alone = s.hosts_file("ml", s.HostEntry("198.18.12.23", "lone"), peers).splitlines()
    assert alone[-1] == "198.18.12.23\tlone" and not any("ftj" in line for line in alone)


def test_launch_argv_with_a_hostname_gets_its_own_uts_namespace_and_hosts_file() -> None:
    argv = s.launch_argv("ns1", [], None, ["python"], hostname="ftj-train-0", hosts="/state/pods/p/hosts")
    assert argv[:9] == ["ip", "netns", "exec", "ns1", "unshare", "--mount", "--propagation", "private", "--uts"]
    steps = argv[argv.index("-c") + 1].split("; ")
    assert "mount --bind /state/pods/p/hosts /etc/hosts" in steps and "hostname ftj-train-0" in steps
    plain = s.launch_argv("ns1", [], None, ["python"])
    assert "--uts" not in plain and "/etc/hosts" not in plain[plain.index("-c") + 1]


def test_sandbox_commands_route_the_pod_cidr_through_the_host_end_only() -> None:
    box = PodSandbox("senseops-pn3-17", "sop3x17", "198.18.12.20", "198.19.254.13", "198.18.12.0/22")
    cmds = [" ".join(c) for c in box.setup_commands()]
    assert "ip -n senseops-pn3-17 route add 198.18.12.0/22 via 198.19.254.13 dev eth0" in cmds
    # Forwarding on this pod's host end, not the machine-wide switch.
    assert "sysctl -qw net.ipv4.conf.sop3x17.forwarding=1" in cmds
    assert not any("ip_forward" in c or "all.forwarding" in c or "default" in c for c in cmds)


@pytest.mark.parametrize(("written", "policy", "code", "log", "expected"), [
    pytest.param(b'{"digest": "sha256:ab"}', None, 0, b"", '{"digest": "sha256:ab"}', id="file-content"),
    pytest.param(b"", None, 1, b"boom\n", None, id="empty-file-no-fallback"),
    pytest.param(b"", "File", 1, b"boom\n", None, id="file-policy-ignores-log"),
    pytest.param(b"", "FallbackToLogsOnError", 1, b"a\nb\nboom", "a\nb\nboom", id="fallback-on-error"),
    pytest.param(b"", "FallbackToLogsOnError", 0, b"fine", None, id="no-fallback-on-success"),
    pytest.param(b"own", "FallbackToLogsOnError", 1, b"log", "own", id="file-wins-over-log"),
    pytest.param(b"x" * 5000, None, 0, b"", "x" * 4096, id="capped-at-4096-bytes"),
    pytest.param(b"", "FallbackToLogsOnError", 2, b"\n".join(b"%d" % i for i in range(200)),
                 "\n".join(str(i) for i in range(120, 200)), id="fallback-keeps-last-80-lines"),
])
def test_termination_message(written: bytes, policy: str | None, code: int, log: bytes,
                             expected: str | None) -> None:
    assert s.termination_message(written, policy, code, log) == expected


def test_termination_message_path_default_and_custom() -> None:
    assert s.termination_message_path({"name": "c"}) == "/dev/termination-log"
    assert s.termination_message_path({"name": "c", "terminationMessagePath": "/tmp/msg"}) == "/tmp/msg"
    with pytest.raises(s.PodSpecError, match="absolute"):
        s.termination_message_path({"name": "c", "terminationMessagePath": "msg"})
