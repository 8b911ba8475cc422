"""Where the source variants' photos come from: an HTTP origin and an S3 store, each on loopback, each its own process.

- ``StaticOrigin(root)``: the files under ``root`` over HTTP/1.1 (keep-alive, Content-Length), the
  standard library's file handler, no request log.
- ``MotoStore(bucket, files=..., copies=..., random=...)``: moto in server mode (``ThreadedMotoServer``),
  as ``tests/s3server.py`` runs it: an IAM user allowed ``s3:*`` and its access key (throwaway keys
  made by moto), a private bucket, the objects (``copies`` are server-side copies: no bytes cross
  the loopback twice), then ``POST /moto-api/reset-auth`` turns SigV4 and IAM checks on for every
  later request.

Each runs as ``python -m bench.lib.origins static|moto CONFIG`` in its own session (its CPU is
neither the driver's nor the server's, and is measured apart: ``pid``), prints one JSON line when
ready and stops when its standard input closes. Both bind 127.0.0.1, port 0.
``aws_environment`` is the environment of a process that reads the store: explicit throwaway keys
and no instance metadata, so no credential chain looks any further.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.lib.photos import REPO

HOST = "127.0.0.1"  # benchmarks send traffic to loopback only
REGION = "us-east-1"
# What moto in server mode needs in this interpreter (the ``moto[server]`` extra of the test extra).
MOTO_MODULES = ("moto", "boto3", "flask")


def not_installed(*modules: str) -> list[str]:
    """Return the names among ``modules`` that this interpreter cannot import (nothing is imported)."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def closed_port() -> int:
    """Return a loopback port that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Store:
    """An S3 endpoint on loopback and the throwaway key that may read its bucket."""

    endpoint: str
    bucket: str
    key_id: str
    secret: str
    region: str = REGION


def aws_environment(store: Store) -> dict[str, str]:
    """The AWS_* variables of a process reading ``store``: its throwaway keys, no metadata service, no shared files."""
    return {
        "AWS_ACCESS_KEY_ID": store.key_id,
        "AWS_SECRET_ACCESS_KEY": store.secret,
        "AWS_REGION": store.region,
        "AWS_EC2_METADATA_DISABLED": "true",  # botocore's switch
        "AWS_METADATA_ENDPOINT": f"http://{HOST}:{closed_port()}",  # obstore has none: a closed loopback port
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
    }


def without_aws(env: Mapping[str, str]) -> dict[str, str]:
    """Return ``env`` less every AWS_* variable (a developer's profile or keys), metadata lookups off."""
    kept = {name: value for name, value in env.items() if not name.startswith("AWS_")}
    kept["AWS_EC2_METADATA_DISABLED"] = "true"
    return kept


class Helper:
    """A helper process on loopback, ready when it prints one JSON line, stopped by closing its stdin."""

    kind = ""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def launch(self, log: Path | None = None, timeout_s: float = 120.0) -> dict[str, Any]:
        """Start the process; return what it printed when ready."""
        with log.open("w") if log else open(os.devnull, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.lib.origins", self.kind, json.dumps(self.config())],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=without_aws(os.environ),
                text=True,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = ""
        while not line.startswith("{"):  # the ready line; anything a library printed before it is skipped
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = self.proc.stdout.readline() if ready else ""
            if not line:
                self.stop()
                tail = log.read_text(errors="replace")[-800:] if log and log.exists() else ""
                raise SystemExit(f"{self.kind}: not ready within {timeout_s:.0f} s, or exited:\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: exactly it and its threads
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


class StaticOrigin(Helper):
    """The files under ``root`` over HTTP/1.1 on 127.0.0.1."""

    kind = "static"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.base = ""

    def config(self) -> dict[str, Any]:
        return {"root": str(self.root)}

    def start(self, log: Path | None = None) -> str:
        """Start serving; return the base URL (``http://127.0.0.1:PORT``)."""
        self.base = str(self.launch(log)["base"])
        return self.base


class MotoStore(Helper):
    """moto in server mode on 127.0.0.1 with SigV4 and IAM checked, holding one private bucket."""

    kind = "moto"

    def __init__(
        self,
        bucket: str,
        files: Mapping[str, Path] | None = None,
        copies: Mapping[str, str] | None = None,
        random: Mapping[str, int] | None = None,
    ) -> None:
        """``files``: key -> file to upload; ``copies``: key -> key to copy server-side; ``random``: key -> size."""
        super().__init__()
        self.bucket = bucket
        self.files = dict(files or {})
        self.copies = dict(copies or {})
        self.random = dict(random or {})

    def config(self) -> dict[str, Any]:
        return {
            "region": REGION,
            "bucket": self.bucket,
            "files": {key: str(path) for key, path in self.files.items()},
            "copies": self.copies,
            "random": self.random,
        }

    def start(self, log: Path | None = None) -> Store:
        """Start moto, make the bucket and its objects, turn auth on; return the endpoint and the reader's key."""
        answer = self.launch(log)
        return Store(answer["endpoint"], self.bucket, answer["key_id"], answer["secret"])


# ---- the child processes ----


def _serve_static(config: Mapping[str, Any]) -> None:
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Files(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: thumbsvc's client pools its connections

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((HOST, 0), functools.partial(Files, directory=config["root"]))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ready({"base": f"http://{HOST}:{server.server_address[1]}"})
    sys.stdin.read()
    server.shutdown()


def _serve_moto(config: Mapping[str, Any]) -> None:
    import logging
    import urllib.request

    boto3 = importlib.import_module("boto3")  # untyped; and only in the interpreters that have moto[server]
    moto_server = importlib.import_module("moto.server")

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = moto_server.ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boot: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region_name": config["region"],
        "aws_access_key_id": "boot",
        "aws_secret_access_key": "boot",
    }
    iam = boto3.client("iam", **boot)
    iam.create_user(UserName="bench")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"}]}
    iam.put_user_policy(UserName="bench", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="bench")["AccessKey"]
    s3 = boto3.client("s3", **boot)
    bucket = config["bucket"]
    s3.create_bucket(Bucket=bucket)  # private: moto's default ACL
    for name, path in config["files"].items():
        s3.put_object(Bucket=bucket, Key=name, Body=Path(path).read_bytes())
    for name, size in config["random"].items():
        s3.put_object(Bucket=bucket, Key=name, Body=os.urandom(size))
    for name, source in config["copies"].items():
        s3.copy_object(Bucket=bucket, Key=name, CopySource={"Bucket": bucket, "Key": source})
    # From now on every request must be signed (SigV4) by a key whose policy allows it.
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    ready({"endpoint": endpoint, "key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"]})
    sys.stdin.read()
    server.stop()


def ready(answer: Mapping[str, Any]) -> None:
    """Print the ready line, then send anything printed later to stderr (nobody reads stdout any more)."""
    print(json.dumps(answer), flush=True)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


def main(argv: list[str]) -> int:
    kind, config = argv[0], json.loads(argv[1])
    {"static": _serve_static, "moto": _serve_moto}[kind](config)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
