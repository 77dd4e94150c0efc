"""Launch a real OCI registry (distribution v3, built by ``make dataplane-bins``) on loopback, and push
model directories to it as images with the real ``crane``.

Each instance gets a free 127.0.0.1 port, its own data folder, an htpasswd file (bcrypt) with generated
credentials, and a docker ``config.json`` holding those credentials for crane. Anonymous requests are
refused. ``stop()`` and ``start()`` keep the port, data and credentials.

Model images have one layer whose files sit under ``models/`` (so an image volume mounted at ``/mnt``
shows ``/mnt/models/...``), no base image, OCI media types, and the caller's OCI labels in the config.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import secrets
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from tests.servers._proc import free_port, go_binary, stop_process, wait_http_ok

# Folder inside the image that holds the model's files.
MODEL_PREFIX = "models"
# bcrypt cost of the generated htpasswd entry. The registry checks the password on every request, so a
# production cost (12: ~0.25 s of CPU) would slow each crane call; the password is random and the server
# lives for one test session on loopback.
BCRYPT_ROUNDS = 6
REALM = "senseops-test-registry"


class RegistryError(RuntimeError):
    """A crane command against the test registry failed; the message holds the command and its output."""


def htpasswd_line(user: str, password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    """One htpasswd entry ``user:$2b$...`` (distribution accepts bcrypt only)."""
    if ":" in user:
        raise ValueError(f"htpasswd user names cannot contain ':' (got {user!r})")
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    return f"{user}:{digest}\n"


def registry_config(port: int, data_dir: Path, htpasswd: Path, http_secret: str) -> dict[str, Any]:
    """The registry's config.yml: filesystem storage, htpasswd auth, listening on 127.0.0.1 only."""
    return {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(data_dir)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": http_secret},
        "auth": {"htpasswd": {"realm": REALM, "path": str(htpasswd)}},
    }


def docker_config(host: str, user: str, password: str) -> dict[str, Any]:
    """A docker ``config.json`` that gives crane (and other OCI clients) ``user``'s credentials for ``host``."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"auths": {host: {"auth": token}}}


def crane_label_flag(key: str, value: str) -> str:
    """The value of one ``crane mutate -l`` flag. crane parses it as a CSV record of ``k=v`` pairs, so a
    value with a comma or a quote is written as one quoted CSV field."""
    if not key or "=" in key:
        raise ValueError(f"an OCI label key must be non-empty and contain no '=' (got {key!r})")
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([f"{key}={value}"])
    return out.getvalue()


def write_model_layer(model_dir: Path, layer: Path) -> None:
    """A reproducible tar of ``model_dir``'s files under ``models/``: sorted, owner 0:0, time 0, modes
    0644/0755. Symlinks and special files are refused (an image volume must carry real files)."""
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory {model_dir} does not exist")
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(path: Path, arcname: str) -> None:
            info = tar.gettarinfo(str(path), arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if info.isdir():
                info.mode = 0o755
                tar.addfile(info)
            elif info.isfile():
                info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                raise ValueError(f"{path} is not a regular file or folder; copy the real file into the model dir")

        add(model_dir, MODEL_PREFIX)
        for path in sorted(model_dir.rglob("*")):
            add(path, f"{MODEL_PREFIX}/{path.relative_to(model_dir).as_posix()}")


class RegistryServer:
    """One distribution registry process serving ``root/data`` on ``127.0.0.1:port`` with htpasswd auth."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.user = "senseops-" + secrets.token_hex(4)
        self.password = secrets.token_urlsafe(24)
        self._http_secret = secrets.token_urlsafe(32)
        self.data_dir = root / "data"
        self.htpasswd = root / "htpasswd"
        self.config_path = root / "config.yml"
        self.docker_config_dir = root / "docker"
        self.log_path = root / f"registry-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    def auth_header(self) -> dict[str, str]:
        """HTTP Basic credentials for direct requests to the registry API."""
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def start(self, timeout_s: float = 30.0) -> RegistryServer:
        """Write config, htpasswd and config.json, start (or restart) the server, wait until it answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.docker_config_dir.mkdir(parents=True, exist_ok=True)
        self.htpasswd.write_text(htpasswd_line(self.user, self.password))
        self.htpasswd.chmod(0o600)
        config = registry_config(self.port, self.data_dir, self.htpasswd, self._http_secret)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        config_json = self.docker_config_dir / "config.json"
        config_json.write_text(json.dumps(docker_config(self.host, self.user, self.password)))
        config_json.chmod(0o600)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            # distribution's OpenTelemetry would otherwise try to export spans to an OTLP collector.
            "OTEL_TRACES_EXPORTER": "none",
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.proc = subprocess.Popen([str(go_binary("registry")), "serve", str(self.config_path)],
                                     env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_http_ok(f"http://{self.host}/v2/", timeout_s, self.proc, headers=self.auth_header())
        return self

    def stop(self) -> None:
        """Stop the server (data and credentials stay for a later ``start()``)."""
        stop_process(self.proc)
        self.proc = None

    def crane_env(self, authenticated: bool = True) -> dict[str, str]:
        """Environment for crane: DOCKER_CONFIG points at this registry's credentials (or at none)."""
        config_dir = self.docker_config_dir if authenticated else self.root / "docker-anonymous"
        config_dir.mkdir(parents=True, exist_ok=True)
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root),
                "DOCKER_CONFIG": str(config_dir)}

    def crane(self, *args: str, authenticated: bool = True, check: bool = True,
              timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run the real crane against this registry; RegistryError on failure when ``check``."""
        cmd = [str(go_binary("crane")), *args]
        result = subprocess.run(cmd, env=self.crane_env(authenticated), capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise RegistryError(f"`crane {' '.join(args)}` exited {result.returncode}: {result.stderr.strip()}")
        return result

    def export(self, ref: str, timeout: float = 300.0) -> bytes:
        """``crane export``: the image's flattened file system as tar bytes."""
        result = subprocess.run([str(go_binary("crane")), "export", ref, "-"], env=self.crane_env(),
                                capture_output=True, timeout=timeout)
        if result.returncode != 0:
            raise RegistryError(f"`crane export {ref}` exited {result.returncode}: "
                                f"{result.stderr.decode(errors='replace').strip()}")
        return result.stdout

    def push_model_dir(self, model_dir: Path, repository: str, tag: str,
                       labels: Mapping[str, str] | None = None, authenticated: bool = True) -> str:
        """Push ``model_dir`` as a one-layer image (files under ``models/``, no base, OCI media types) to
        ``repository:tag`` with ``labels`` in its config; return ``host/repository@sha256:…``."""
        ref = f"{self.host}/{repository}:{tag}"
        with tempfile.TemporaryDirectory(dir=self.root) as scratch:
            layer = Path(scratch) / "layer.tar"
            write_model_layer(model_dir, layer)
            pushed = self.crane("append", "--oci-empty-base", "-f", str(layer), "-t", ref,
                                authenticated=authenticated).stdout.strip()
        if labels:
            flags = [arg for key, value in sorted(labels.items()) for arg in ("-l", crane_label_flag(key, value))]
            pushed = self.crane("mutate", ref, *flags, "-t", ref, authenticated=authenticated).stdout.strip()
        if "@sha256:" not in pushed:
            raise RegistryError(f"crane printed no digest reference for {ref}: {pushed!r}")
        return pushed
