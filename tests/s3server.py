"""A real S3 server on loopback for the S3 tests: moto in server mode with SigV4 checked, and helpers around it.

``moto_s3()`` starts one ``ThreadedMotoServer`` on 127.0.0.1 (port 0) per test process: moto keeps
its state in module globals, so two servers in one process would share it anyway. Before auth is
on, it creates two IAM users (one allowed ``s3:*``, one with no policy) and their access keys; then
``POST /moto-api/reset-auth`` with ``0`` turns signature and policy checks on for every later request
(the body must be sent as ``text/plain``: moto reads it as raw data). Buckets are then created with
boto3 (obstore, the loader's library, cannot create buckets) and objects uploaded with obstore,
both signed with the allowed user's key.

Every request moto answers is recorded from its request log (the ``werkzeug`` logger), so tests
count GETs and HEADs at the server. ``CountingProxy`` sits in front of any loopback server and
counts connections and the bytes sent back; ``StallingServer`` accepts connections and never
answers.

The credentials are throwaway keys made by moto. ``aws_environment`` gives the environment the
loader reads: explicit keys (so the chain never looks further), ``AWS_EC2_METADATA_DISABLED`` for
botocore, and obstore's ``AWS_METADATA_ENDPOINT`` pointed at a closed loopback port, so no credential
chain in a test can reach 169.254.169.254.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "us-east-1"
BUCKET = "thumbsvc-media"
OTHER_BUCKET = "thumbsvc-private-other"
_REQUEST = re.compile(r"(?:\x1b\[[0-9;]*m)*([A-Z]+) (\S+) HTTP/[0-9.]+")


@dataclass
class Seen:
    method: str
    path: str
    status: str


class _RequestLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[Seen] = []
        self.seen_lock = threading.Lock()  # not ``lock``: logging.Handler holds that one around emit()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        match = _REQUEST.match(str(args[0])) if len(args) == 3 else None
        if match is not None:
            with self.seen_lock:
                self.seen.append(Seen(match.group(1), match.group(2), str(args[1])))


@dataclass
class MotoS3:
    endpoint: str
    key_id: str
    secret: str
    denied_key_id: str
    denied_secret: str
    log: _RequestLog = field(repr=False)

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def requests(self, method: str | None = None, key: str = "") -> list[Seen]:
        """The requests moto answered so far, of one method and for paths containing ``key``."""
        with self.log.seen_lock:
            seen = list(self.log.seen)
        return [s for s in seen if (method is None or s.method == method) and key in s.path]

    def create_bucket(self, name: str) -> None:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
        )
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """Upload an object with obstore, the loader's own library, signed with the allowed user's key."""
        import obstore
        from obstore.store import S3Store

        store = S3Store(
            bucket,
            endpoint=self.endpoint,
            region=REGION,
            access_key_id=self.key_id,
            secret_access_key=self.secret,
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )
        obstore.put(store, key, data)


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@functools.cache
def moto_s3() -> MotoS3:
    """Start moto once for this test process (SigV4 enforced); return its endpoint and keys."""
    import boto3
    from moto.server import ThreadedMotoServer

    log = _RequestLog()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.setLevel(logging.INFO)
    werkzeug.addHandler(log)  # a handler of our own: werkzeug adds none that prints each request
    werkzeug.propagate = False
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boot = {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": "boot",
        "aws_secret_access_key": "boot",
    }
    iam = boto3.client("iam", **boot)
    iam.create_user(UserName="thumbsvc")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"}]}
    iam.put_user_policy(UserName="thumbsvc", PolicyName="s3", PolicyDocument=json.dumps(policy))
    allowed = iam.create_access_key(UserName="thumbsvc")["AccessKey"]
    iam.create_user(UserName="nobody")  # no policy: every S3 call is AccessDenied
    denied = iam.create_access_key(UserName="nobody")["AccessKey"]
    iam.close()
    _post(f"{endpoint}/moto-api/reset-auth", b"0")  # from now on every request is signed and authorised
    s3 = MotoS3(
        endpoint,
        allowed["AccessKeyId"],
        allowed["SecretAccessKey"],
        denied["AccessKeyId"],
        denied["SecretAccessKey"],
        log,
    )
    s3.create_bucket(BUCKET)
    s3.create_bucket(OTHER_BUCKET)
    return s3


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def aws_environment(key_id: str, secret: str) -> dict[str, str]:
    """The AWS_* variables the S3 tests run with: explicit throwaway keys, no metadata service."""
    return {
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_METADATA_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
    }


# Variables of the chain that a developer's shell could hold: removed for every S3 test.
CHAIN_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_ALLOW_HTTP",
    "AWS_SKIP_SIGNATURE",
)


class CountingProxy:
    """A TCP proxy on 127.0.0.1 in front of a loopback port: counts connections and the bytes sent back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.accepts = 0
        self.bytes_down = 0
        self.lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepts += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, down: bool) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                if down:
                    with self.lock:
                        self.bytes_down += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            source.close()  # each socket is the source of exactly one pump

    def close(self) -> None:
        self._closed.set()
        self._listener.close()


class StallingServer:
    """Accepts connections on 127.0.0.1, reads the request and never answers; counts connections."""

    def __init__(self) -> None:
        self.accepts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepts += 1
            self._held.append(conn)

    def close(self) -> None:
        self._listener.close()
        for conn in self._held:
            conn.close()


@contextmanager
def proxy_to(port: int) -> Iterator[CountingProxy]:
    proxy = CountingProxy(port)
    try:
        yield proxy
    finally:
        proxy.close()


def settings_values(endpoint: str, **overrides: Any) -> dict[str, Any]:
    """Settings for a service that reads ``BUCKET`` from ``endpoint``."""
    values: dict[str, Any] = {"allowed_sources": (f"s3://{BUCKET}/",), "s3_endpoint": endpoint}
    values.update(overrides)
    return values


class S3rver:
    """npm's s3rver (a second, independent S3 implementation) on 127.0.0.1 in a child process.

    Found at ``$S3RVER_BIN``, in ``tests/js`` (``.ci/run`` installs it there with ``npm ci``) or on
    ``PATH``; ``S3rver.find()`` is None without it. It does not check signatures against its key,
    so auth is tested on moto only.
    """

    KEY_ID = "S3RVER"
    SECRET = "S3RVER"

    def __init__(self, binary: str, directory: str, bucket: str) -> None:
        import subprocess

        self._process = subprocess.Popen(
            [binary, "-d", directory, "-a", "127.0.0.1", "-p", "0", "--configure-bucket", bucket],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self._process.stdout is not None
        line = ""
        for line in self._process.stdout:
            if "listening on" in line:
                break
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if match is None:
            self.close()
            raise RuntimeError(f"s3rver did not start: {line!r}")
        self.port = int(match.group(1))
        self._drain = threading.Thread(target=self._process.stdout.read, daemon=True)  # its request log
        self._drain.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def find() -> str | None:
        import shutil

        installed = Path(__file__).parent / "js" / "node_modules" / ".bin" / "s3rver"  # npm ci --prefix tests/js
        binary = os.environ.get("S3RVER_BIN") or (str(installed) if installed.exists() else shutil.which("s3rver"))
        return binary if binary and os.path.exists(binary) and shutil.which("node") else None

    def put(self, bucket: str, key: str, data: bytes) -> None:
        import obstore
        from obstore.store import S3Store

        store = S3Store(
            bucket,
            endpoint=self.endpoint,
            region=REGION,
            access_key_id=self.KEY_ID,
            secret_access_key=self.SECRET,
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )
        obstore.put(store, key, data)

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)
        if hasattr(self, "_drain"):
            self._drain.join(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()
