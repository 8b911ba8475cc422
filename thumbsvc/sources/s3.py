"""S3 and S3-compatible object stores (R2, MinIO, GCS's S3 interface): ``s3://bucket/key`` sources.

Every fetch goes through the same fences, in order:

1. the reference is split into a bucket and a key used exactly as given (``urls.split_s3_source``:
   ``.``/``..``/empty segments, empty keys and bad bucket names are 400);
2. the bucket and key prefix must be allowed by an ``s3://bucket/`` or ``s3://bucket/prefix/``
   entry of ``THUMBSVC_ALLOWED_SOURCES`` (403, before any request);
3. a HEAD gives the object's size, refused over ``max_bytes`` (413) before a byte of the body is
   asked for; the GET checks the size it answers with again and streams the body under the cap;
4. the HEAD, the GET, the body and every retry of the client (capped: ``max_retries``, backoff
   under a second) run under one deadline, ``fetch_timeout_s`` (504). Cancelling an obstore call
   drops its request, so the deadline closes the connection too.

Answers map to our errors: no such key or bucket -> ``SourceNotFound`` (404); access denied or
bad credentials -> ``UpstreamError`` (502, ``no-store``: the next request asks again; S3 answers
403 for a missing key to a principal without ``s3:ListBucket``, so grant it to get 404s);
unreachable endpoint, 5xx, broken answers -> ``UpstreamError``. The library's own messages are
not kept: S3's error bodies repeat the access key id. The validator is ``"s3:" + ETag``, so the
thumbnail's ETag changes when the object does, and ``revalidate`` can answer it from a HEAD.

Credentials come only from the AWS credential chain, never from a reference or a setting:
obstore reads the environment's keys, web identity (``AWS_WEB_IDENTITY_TOKEN_FILE`` +
``AWS_ROLE_ARN``), container credentials and instance metadata (IMDSv2); static keys of a
profile in the shared credentials or config file are read here (``shared_file_credentials``), as
obstore has no profile support.
"""

from __future__ import annotations

import configparser
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import obstore
from obstore.exceptions import BaseError, NotFoundError, PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from thumbsvc import __version__
from thumbsvc.errors import BadRequest, SourceNotFound, SourceTooLarge, UpstreamError, UpstreamTimeout
from thumbsvc.sources import SourceImage
from thumbsvc.sources.allowlist import Allowlist
from thumbsvc.urls import split_s3_source

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config, S3Credential

logger = logging.getLogger("thumbsvc")

USER_AGENT = f"thumbsvc/{__version__} (image thumbnailer)"
CHUNK_BYTES = 256 * 1024  # the body arrives in pieces of at least this size; the cap is checked on each
KEEPALIVE_EXPIRY_S = 5.0
# obstore's runtime thread may still be leaving the event loop's wake-up call when the last await
# returns; an interpreter that exits at that instant aborts. aclose() waits this long for it.
SETTLE_S = 0.02
LIBRARY_TIMEOUT_MARGIN_S = 1.0  # obstore's per-request timeout, past the fetch deadline


@dataclass(frozen=True, slots=True)
class S3Options:
    """What the S3 loader needs from the settings."""

    endpoint: str | None = None
    region: str | None = None
    path_style: bool = False
    max_bytes: int = 25_000_000
    connect_timeout_s: float = 3.0
    fetch_timeout_s: float = 10.0
    max_retries: int = 2


class StaticCredentials:
    """An obstore credential provider for keys read from a shared file; its repr never shows them."""

    def __init__(self, access_key_id: str, secret_access_key: str, token: str | None) -> None:
        self._credential: S3Credential = {
            "access_key_id": access_key_id,
            "secret_access_key": secret_access_key,
            "token": token,
            "expires_at": None,
        }

    def __call__(self) -> S3Credential:
        return self._credential

    def __repr__(self) -> str:
        return "StaticCredentials(<from the shared credentials file>)"


def shared_file_credentials(environ: Mapping[str, str]) -> StaticCredentials | None:
    """Given the environment, return the static keys of its profile from the shared files, where the chain reads them.

    None when the environment holds keys or a web identity (they come first, obstore reads them),
    or when no file has keys for the profile (obstore then tries container and instance credentials).
    The profile is ``AWS_PROFILE``, else ``default``; the files ``AWS_SHARED_CREDENTIALS_FILE`` and
    ``AWS_CONFIG_FILE``, else ``~/.aws/credentials`` and ``~/.aws/config``.
    """
    if environ.get("AWS_ACCESS_KEY_ID") or (environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") and environ.get("AWS_ROLE_ARN")):
        return None
    profile = environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"
    home = Path(environ.get("HOME") or "~").expanduser()
    files = (
        (environ.get("AWS_SHARED_CREDENTIALS_FILE") or str(home / ".aws" / "credentials"), profile),
        (environ.get("AWS_CONFIG_FILE") or str(home / ".aws" / "config"), _config_section(profile)),
    )
    for path, section in files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(os.path.expanduser(path), encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        if not parser.has_section(section):
            continue
        key_id = parser.get(section, "aws_access_key_id", fallback="").strip()
        secret = parser.get(section, "aws_secret_access_key", fallback="").strip()
        if key_id and secret:
            token = parser.get(section, "aws_session_token", fallback="").strip() or None
            return StaticCredentials(key_id, secret, token)
    return None


def _config_section(profile: str) -> str:
    return "default" if profile == "default" else f"profile {profile}"


@contextmanager
def map_store_errors(what: str) -> Iterator[None]:
    """Translate obstore's errors into ours. Its messages are dropped (``from None``): S3's error bodies
    in them repeat the access key id, and credentials are never logged."""
    try:
        yield
    except (FileNotFoundError, NotFoundError):
        raise SourceNotFound(f"{what}: no such key or bucket") from None
    except (PermissionDeniedError, UnauthenticatedError) as exc:
        raise UpstreamError(f"{what}: access denied ({type(exc).__name__})") from None
    except ValueError:
        raise BadRequest(f"{what}: the client refused the key", public_message="Malformed source URL") from None
    except (BaseError, OSError) as exc:
        raise UpstreamError(f"{what}: {type(exc).__name__}") from None


class S3Source:
    """Fetch ``s3://bucket/key`` sources for one process: one obstore client per allowed bucket, made on first use."""

    def __init__(self, options: S3Options, allowlist: Allowlist, *, environ: Mapping[str, str] | None = None) -> None:
        self.options = options
        self.allowlist = allowlist
        environ = os.environ if environ is None else environ
        self._credentials = shared_file_credentials(environ)
        if self._credentials is None and environ.get("AWS_PROFILE") and not environ.get("AWS_ACCESS_KEY_ID"):
            logger.warning(
                "AWS_PROFILE=%s has no static keys in the shared files; S3 credentials come from web identity, "
                "the container or the instance instead (role, SSO and process profiles are not read)",
                environ["AWS_PROFILE"],
            )
        # Only allowed buckets get a client, so there are at most as many as s3:// entries.
        self._stores: dict[str, S3Store] = {}

    def locate(self, ref: str) -> tuple[str, str]:
        """Given a reference, return its bucket and key.

        Raise ``BadRequest`` if it is malformed, ``Forbidden`` if no entry allows it.
        """
        try:
            bucket, key = split_s3_source(ref)
        except ValueError as exc:
            raise BadRequest(f"bad S3 source {ref!r}: {exc}", public_message="Malformed source URL") from exc
        self.allowlist.check_s3(bucket, key)
        return bucket, key

    async def fetch(self, ref: str) -> SourceImage:
        """Given an ``s3://bucket/key`` reference, return the object's bytes and ``"s3:" + ETag`` as validator.

        Raise ``BadRequest``, ``Forbidden`` (no request made), ``SourceNotFound``, ``SourceTooLarge``
        (from the size, before the body), ``UpstreamError`` or ``UpstreamTimeout``.
        """
        bucket, key = self.locate(ref)
        what = f"s3://{bucket}/{key}"
        try:
            with anyio.fail_after(self.options.fetch_timeout_s):
                return await self._get(self._store(bucket), key, what)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{what}: no answer within {self.options.fetch_timeout_s} s") from exc

    async def revalidate(self, ref: str) -> str:
        """Return the validator ``fetch`` would give, from a HEAD: the object's bytes are not transferred.

        Raise the errors of ``fetch``. An object without an ETag is fetched (its validator is then a content hash).
        """
        bucket, key = self.locate(ref)
        what = f"s3://{bucket}/{key}"
        try:
            with anyio.fail_after(self.options.fetch_timeout_s):
                with map_store_errors(f"HEAD {what}"):
                    meta = await obstore.head_async(self._store(bucket), key)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{what}: no answer within {self.options.fetch_timeout_s} s") from exc
        self._check_size(meta["size"], what)
        etag = meta["e_tag"]
        return validator(etag) if etag else (await self.fetch(ref)).validator

    async def _get(self, store: S3Store, key: str, what: str) -> SourceImage:
        with map_store_errors(f"HEAD {what}"):
            meta = await obstore.head_async(store, key)
        self._check_size(meta["size"], what)
        parts = []  # joined once: one copy of the body (as in the HTTP loader)
        received = 0
        with map_store_errors(f"GET {what}"):
            result = await obstore.get_async(store, key)
            self._check_size(result.meta["size"], what)  # replaced by a larger object since the HEAD
            async for chunk in result.stream(min_chunk_size=CHUNK_BYTES):
                received += len(chunk)
                if received > self.options.max_bytes:
                    raise SourceTooLarge(f"{what}: body is over {self.options.max_bytes} bytes")
                parts.append(chunk)
        data = b"".join(parts)
        etag = result.meta["e_tag"]
        return SourceImage(data, validator(etag)) if etag else SourceImage.of(data)

    def _check_size(self, size: int, what: str) -> None:
        if size > self.options.max_bytes:
            raise SourceTooLarge(f"{what}: {size} bytes, over {self.options.max_bytes}")

    def _store(self, bucket: str) -> S3Store:
        store = self._stores.get(bucket)
        if store is None:
            with map_store_errors(f"s3://{bucket}/ client"):
                store = S3Store(
                    bucket,
                    config=self._config(bucket),
                    client_options=self._client_options(),
                    retry_config=self._retry_config(),
                    credential_provider=self._credentials,
                )
            self._stores[bucket] = store
        return store

    def _config(self, bucket: str) -> S3Config:
        options = self.options
        config: dict[str, Any] = {"virtual_hosted_style_request": not options.path_style}
        if options.endpoint:
            # Virtual-hosted style with an endpoint: obstore wants the bucket's own host.
            config["endpoint"] = options.endpoint if options.path_style else bucket_endpoint(options.endpoint, bucket)
        if options.region:
            config["region"] = options.region
        return config  # type: ignore[return-value]

    def _client_options(self) -> ClientConfig:
        options = self.options
        return {
            "allow_http": bool(options.endpoint and options.endpoint.startswith("http://")),
            "connect_timeout": timedelta(seconds=options.connect_timeout_s),
            # A backstop only: the fetch's own deadline (fail_after) must fire first and answer 504; the
            # library's timeout at the same instant raced it and won as a generic error (502).
            "timeout": timedelta(seconds=options.fetch_timeout_s + LIBRARY_TIMEOUT_MARGIN_S),
            "pool_idle_timeout": timedelta(seconds=KEEPALIVE_EXPIRY_S),
            "user_agent": USER_AGENT,
        }

    def _retry_config(self) -> RetryConfig:
        # obstore's defaults (10 retries over up to 3 minutes) would outlive the deadline; the deadline
        # cancels them anyway, but a capped policy leaves the last attempts time to answer.
        return {
            "max_retries": self.options.max_retries,
            "retry_timeout": timedelta(seconds=self.options.fetch_timeout_s),
            "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=1), "base": 2},
        }

    async def aclose(self) -> None:
        used, self._stores = bool(self._stores), {}
        if used:
            await anyio.sleep(SETTLE_S)


def validator(etag: str) -> str:
    """Given an object's ETag, return the source validator that goes into the thumbnail's ETag."""
    return "s3:" + etag.strip('"')


def bucket_endpoint(endpoint: str, bucket: str) -> str:
    """Given an endpoint URL and a bucket, return the bucket's virtual-hosted URL (``https://bucket.host``)."""
    scheme, _, host = endpoint.partition("://")
    return f"{scheme}://{bucket}.{host}"
