"""The S3 loader against real S3 servers on loopback: moto with SigV4 enforced, and npm's s3rver where installed.

Requests are counted at the server (moto's request log) and at a counting TCP proxy in front of
it, so "no request" and "no body" are proven where the bytes go, not inferred from the loader.
Credentials are throwaway keys in the environment; no chain can reach instance metadata
(``tests/s3server.py`` says how).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import make_photo
from tests.s3server import (
    BUCKET,
    CHAIN_VARIABLES,
    OTHER_BUCKET,
    CountingProxy,
    MotoS3,
    S3rver,
    StallingServer,
    aws_environment,
    closed_port,
    moto_s3,
    proxy_to,
)
from thumbsvc.client import URLSigner
from thumbsvc.config import ConfigError, Settings
from thumbsvc.errors import BadRequest, Forbidden, SourceNotFound, SourceTooLarge, UpstreamError, UpstreamTimeout
from thumbsvc.service import s3_options
from thumbsvc.sources.allowlist import Allowlist, parse_rule
from thumbsvc.sources.s3 import S3Options, S3Source, bucket_endpoint, shared_file_credentials

pytestmark = pytest.mark.anyio

LIMIT = 100_000
SourceFactory = Callable[..., S3Source]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def s3() -> MotoS3:
    return moto_s3()


@pytest.fixture
def aws_env(s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in CHAIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = aws_environment(s3.key_id, s3.secret)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def proxy(s3: MotoS3) -> Iterator[CountingProxy]:
    with proxy_to(s3.port) as counting:
        yield counting


@pytest.fixture
def source_factory(aws_env: dict[str, str], proxy: CountingProxy) -> Iterator[SourceFactory]:
    made: list[S3Source] = []

    def factory(entries: tuple[str, ...] = (f"s3://{BUCKET}/",), **options: Any) -> S3Source:
        values: dict[str, Any] = {"endpoint": proxy.endpoint, "path_style": True, "max_bytes": LIMIT}
        values.update(options)
        source = S3Source(S3Options(**values), Allowlist.parse(entries))
        made.append(source)
        return source

    yield factory
    # The stores are dropped; the event loop is gone by now, so there is nothing to wait for here.
    for source in made:
        source._stores.clear()


def unique(name: str) -> str:
    return f"t/{uuid.uuid4().hex[:12]}/{name}"


async def test_fetch_returns_the_object_and_its_etag_as_validator(s3: MotoS3, source_factory: SourceFactory) -> None:
    data = make_photo((120, 90))
    key = unique("cat.jpg")
    s3.put(BUCKET, key, data)
    image = await source_factory().fetch(f"s3://{BUCKET}/{key}")
    assert image.data == data
    assert image.validator == "s3:" + hashlib.md5(data).hexdigest()  # S3's ETag of a single-part upload


@pytest.mark.parametrize(
    "name",
    [
        "with space/and+plus.jpg",
        "ünïcödé/写真.jpg",
        "literal%41.jpg",
        "q?x#y.jpg",
        "back\\slash.jpg",
        "a~!$&'()*=@:;,.jpg",
    ],
)
async def test_keys_are_used_exactly_as_given(s3: MotoS3, source_factory: SourceFactory, name: str) -> None:
    key = unique(name)
    s3.put(BUCKET, key, name.encode())
    assert (await source_factory().fetch(f"s3://{BUCKET}/{key}")).data == name.encode()


async def test_a_changed_object_changes_the_validator(s3: MotoS3, source_factory: SourceFactory) -> None:
    key = unique("v.jpg")
    s3.put(BUCKET, key, b"one")
    source = source_factory()
    first = await source.revalidate(f"s3://{BUCKET}/{key}")
    s3.put(BUCKET, key, b"two")
    assert await source.revalidate(f"s3://{BUCKET}/{key}") != first


@pytest.mark.parametrize(
    "entries",
    [
        ("*",),
        (BUCKET,),
        (f"*.{BUCKET}",),
        (f"https://{BUCKET}/",),
        (f"s3://{OTHER_BUCKET}/",),
        (f"s3://{BUCKET}/other/",),
        (f"s3://{BUCKET}/t/x",),  # not a prefix entry (no '/'): refused at start-up, see below
    ],
)
async def test_a_bucket_not_allowed_is_refused_without_a_request(
    s3: MotoS3, source_factory: SourceFactory, proxy: CountingProxy, entries: tuple[str, ...]
) -> None:
    key = unique("cat.jpg")
    s3.put(BUCKET, key, b"data")
    before = len(s3.requests())
    try:
        source = source_factory(entries)
    except ConfigError:
        return
    with pytest.raises(Forbidden) as caught:
        await source.fetch(f"s3://{BUCKET}/{key}")
    assert caught.value.public_message == "Source not allowed"
    with pytest.raises(Forbidden):
        await source.revalidate(f"s3://{BUCKET}/{key}")
    assert proxy.accepts == 0
    assert len(s3.requests()) == before


async def test_a_prefix_entry_allows_keys_below_it_only(s3: MotoS3, source_factory: SourceFactory) -> None:
    key = unique("cat.jpg")
    s3.put(BUCKET, key, b"data")
    prefix = key.rsplit("/", 1)[0] + "/"
    source = source_factory((f"s3://{BUCKET}/{prefix}",))
    assert (await source.fetch(f"s3://{BUCKET}/{key}")).data == b"data"
    with pytest.raises(Forbidden):
        await source.fetch(f"s3://{BUCKET}/{prefix[:-1]}x/cat.jpg")  # same text, not below the '/'


@pytest.mark.parametrize(
    "ref",
    [
        f"s3://{BUCKET}",
        f"s3://{BUCKET}/",
        f"s3://{BUCKET}/t/../secret.jpg",
        f"s3://{BUCKET}/./cat.jpg",
        f"s3://{BUCKET}/t//cat.jpg",
        f"s3://{BUCKET}/t/",
        f"S3://{BUCKET}/cat.jpg",
        f"s3://user:secret@{BUCKET}/cat.jpg",
        "s3://Bad_Bucket/cat.jpg",
        "s3://ab/cat.jpg",
        f"s3://{BUCKET}/" + "k" * 1025,
    ],
)
async def test_malformed_references_are_400_without_a_request(
    source_factory: SourceFactory, proxy: CountingProxy, ref: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await source_factory().fetch(ref)
    assert caught.value.public_message == "Malformed source URL"
    assert proxy.accepts == 0


async def test_a_missing_key_is_404(s3: MotoS3, source_factory: SourceFactory) -> None:
    with pytest.raises(SourceNotFound):
        await source_factory().fetch(f"s3://{BUCKET}/{unique('missing.jpg')}")
    with pytest.raises(SourceNotFound):
        await source_factory().revalidate(f"s3://{BUCKET}/{unique('missing.jpg')}")


async def test_a_missing_bucket_is_404(source_factory: SourceFactory) -> None:
    with pytest.raises(SourceNotFound):
        await source_factory(("s3://no-such-bucket-here/",)).fetch("s3://no-such-bucket-here/cat.jpg")


@pytest.mark.parametrize("who", ["wrong secret", "no permission"])
async def test_refused_credentials_are_502_and_never_shown(
    s3: MotoS3, source_factory: SourceFactory, monkeypatch: pytest.MonkeyPatch, who: str
) -> None:
    key = unique("cat.jpg")
    s3.put(BUCKET, key, b"data")
    key_id, secret = (s3.key_id, "not-the-secret") if who == "wrong secret" else (s3.denied_key_id, s3.denied_secret)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    with pytest.raises(UpstreamError) as caught:
        await source_factory().fetch(f"s3://{BUCKET}/{key}")
    error = caught.value
    assert error.public_message == "Origin error" and error.cache_ttl_s is None
    assert error.__cause__ is None and error.__suppress_context__
    for text in (str(error), error.detail, repr(error)):
        assert key_id not in text and secret not in text
    assert s3.requests("HEAD", key)[-1].status == "403"


async def test_an_object_over_the_cap_is_413_before_its_body_is_asked_for(
    s3: MotoS3, source_factory: SourceFactory, proxy: CountingProxy
) -> None:
    key = unique("big.jpg")
    s3.put(BUCKET, key, b"\xff" * (3 * LIMIT))
    with pytest.raises(SourceTooLarge):
        await source_factory().fetch(f"s3://{BUCKET}/{key}")
    assert [r.method for r in s3.requests(key=key) if r.method != "PUT"] == ["HEAD"]
    assert proxy.bytes_down < 2_000  # the HEAD's headers, none of the 300 kB


async def test_an_object_of_exactly_the_cap_is_fetched(s3: MotoS3, source_factory: SourceFactory) -> None:
    key = unique("cap.jpg")
    s3.put(BUCKET, key, b"\x01" * LIMIT)
    assert len((await source_factory().fetch(f"s3://{BUCKET}/{key}")).data) == LIMIT


async def test_revalidate_gives_the_fetch_validator_from_a_head_alone(
    s3: MotoS3, source_factory: SourceFactory, proxy: CountingProxy
) -> None:
    key = unique("cat.jpg")
    data = make_photo((400, 300))
    s3.put(BUCKET, key, data)
    source = source_factory()
    validator = await source.revalidate(f"s3://{BUCKET}/{key}")
    assert [r.method for r in s3.requests(key=key) if r.method != "PUT"] == ["HEAD"]
    assert proxy.bytes_down < 2_000 < len(data)
    assert (await source.fetch(f"s3://{BUCKET}/{key}")).validator == validator


async def test_a_stalling_server_is_504_within_the_deadline(aws_env: dict[str, str]) -> None:
    server = StallingServer()
    try:
        source = S3Source(
            S3Options(endpoint=server.endpoint, path_style=True, fetch_timeout_s=1.0, connect_timeout_s=0.5),
            Allowlist.parse([f"s3://{BUCKET}/"]),
        )
        for call in (source.fetch, source.revalidate):
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout) as caught:
                await call(f"s3://{BUCKET}/cat.jpg")
            assert 0.9 < time.monotonic() - started < 1.6
            assert caught.value.public_message == "Origin timed out"
        assert server.accepts >= 1
        await source.aclose()
    finally:
        server.close()


async def test_an_unreachable_endpoint_is_502(aws_env: dict[str, str]) -> None:
    source = S3Source(
        S3Options(endpoint=f"http://127.0.0.1:{closed_port()}", path_style=True, fetch_timeout_s=5.0),
        Allowlist.parse([f"s3://{BUCKET}/"]),
    )
    started = time.monotonic()
    with pytest.raises(UpstreamError):
        await source.fetch(f"s3://{BUCKET}/cat.jpg")
    assert time.monotonic() - started < 4  # a few capped retries, not the deadline
    await source.aclose()


async def test_static_keys_of_a_profile_in_the_shared_file(
    s3: MotoS3, source_factory: SourceFactory, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = unique("cat.jpg")
    s3.put(BUCKET, key, b"data")
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[thumbs]\naws_access_key_id = {s3.key_id}\naws_secret_access_key = {s3.secret}\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "thumbs")
    source = source_factory()
    assert s3.secret not in repr(source._credentials)
    assert (await source.fetch(f"s3://{BUCKET}/{key}")).data == b"data"


async def test_without_credentials_the_chain_ends_at_the_metadata_endpoint_we_pointed_at_loopback(
    s3: MotoS3, source_factory: SourceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same environment as every S3 test, less the keys: obstore's last resort is instance
    # metadata, which AWS_METADATA_ENDPOINT sends to a loopback listener here (never 169.254.169.254).
    metadata = StallingServer()
    try:
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        monkeypatch.setenv("AWS_METADATA_ENDPOINT", metadata.endpoint)
        source = source_factory(fetch_timeout_s=1.0, connect_timeout_s=0.5)
        with pytest.raises((UpstreamError, UpstreamTimeout)):
            await source.fetch(f"s3://{BUCKET}/{unique('cat.jpg')}")
        assert metadata.accepts >= 1
    finally:
        metadata.close()


def test_shared_file_credentials_follow_the_chain_order(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[profile app]\naws_access_key_id = AKIDCONFIG\naws_secret_access_key = s3cret\n")
    empty = str(tmp_path / "none")
    base = {"AWS_SHARED_CREDENTIALS_FILE": empty, "AWS_CONFIG_FILE": str(config), "HOME": str(tmp_path)}
    found = shared_file_credentials({**base, "AWS_PROFILE": "app"})
    assert found is not None and found()["access_key_id"] == "AKIDCONFIG" and "s3cret" not in repr(found)
    assert shared_file_credentials(base) is None  # no default profile
    assert shared_file_credentials({**base, "AWS_PROFILE": "app", "AWS_ACCESS_KEY_ID": "AKIDENV"}) is None
    identity = {"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token", "AWS_ROLE_ARN": "arn:aws:iam::1:role/r"}
    assert shared_file_credentials({**base, "AWS_PROFILE": "app", **identity}) is None


@pytest.mark.parametrize(
    ("entry", "bucket", "prefix"),
    [("s3://media-bucket/", "media-bucket", ""), ("s3://media.bucket/photos/2024/", "media.bucket", "photos/2024/")],
)
def test_s3_entries(entry: str, bucket: str, prefix: str) -> None:
    rule = parse_rule(entry)
    assert (rule.kind, rule.host, rule.path) == ("s3", bucket, prefix)
    assert Allowlist([rule]).has_s3


@pytest.mark.parametrize(
    "entry",
    [
        "s3://media-bucket",
        "S3://media-bucket/",
        "s3://Media/",
        "s3://media-bucket/a/../",
        "s3://media-bucket//",
        "s3://a/",
    ],
)
def test_bad_s3_entries_stop_startup(entry: str) -> None:
    with pytest.raises(ConfigError, match="THUMBSVC_ALLOWED_SOURCES"):
        parse_rule(entry)


def test_bucket_entries_never_allow_http_urls() -> None:
    import httpx

    allowlist = Allowlist.parse(["s3://media-bucket/"])
    assert not allowlist.allows(httpx.URL("https://media-bucket/"))
    assert not allowlist.allows(httpx.URL("https://media-bucket.s3.amazonaws.com/cat.jpg"))


@pytest.mark.parametrize("ref", ["s3://media-bucket/a/../b.jpg", "s3://media-bucket/./b.jpg", "s3://media-bucket/"])
def test_the_client_refuses_to_sign_keys_the_loader_refuses(ref: str) -> None:
    with pytest.raises(ValueError, match="S3"):
        URLSigner(key="k").url(ref, width=100)


def test_the_client_signs_s3_references() -> None:
    url = URLSigner(key="k", base_url="https://img.example.com").url("s3://media-bucket/photos/cat.jpg", width=300)
    assert url.endswith("/300x/s3%3A%2F%2Fmedia-bucket/photos/cat.jpg")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"THUMBSVC_S3_ENDPOINT": "minio:9000"}, "THUMBSVC_S3_ENDPOINT"),
        ({"THUMBSVC_S3_ENDPOINT": "ftp://minio:9000"}, "THUMBSVC_S3_ENDPOINT"),
        ({"THUMBSVC_S3_ENDPOINT": "http://minio:9000/bucket"}, "THUMBSVC_S3_ENDPOINT"),
        ({"THUMBSVC_S3_REGION": "EU West"}, "THUMBSVC_S3_REGION"),
        ({"THUMBSVC_S3_PATH_STYLE": "maybe"}, "THUMBSVC_S3_PATH_STYLE"),
    ],
)
def test_bad_s3_settings_stop_startup_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.from_env(env)
    assert "\n" not in str(caught.value)


def test_an_endpoint_with_credentials_is_refused_without_repeating_them() -> None:
    with pytest.raises(ConfigError, match="THUMBSVC_S3_ENDPOINT") as caught:
        Settings.from_env({"THUMBSVC_S3_ENDPOINT": "https://AKIDEXAMPLE:s3cret@minio.internal:9000"})
    assert "s3cret" not in str(caught.value) and "AKIDEXAMPLE" not in str(caught.value)


def test_s3_options_from_settings() -> None:
    default = s3_options(Settings())
    assert (default.endpoint, default.region, default.path_style) == (None, None, False)
    r2 = s3_options(
        Settings.from_env(
            {"THUMBSVC_S3_ENDPOINT": "https://acct.r2.cloudflarestorage.com/", "THUMBSVC_S3_REGION": "auto"}
        )
    )
    assert (r2.endpoint, r2.region, r2.path_style) == ("https://acct.r2.cloudflarestorage.com", "auto", True)
    hosted = s3_options(Settings(s3_endpoint="http://minio:9000", s3_path_style=False))
    assert hosted.path_style is False


@pytest.fixture(scope="module")
def s3rver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3rver]:
    binary = S3rver.find()
    if binary is None:
        pytest.skip("npm's s3rver is not installed (.ci/run installs it: npm ci --prefix tests/js)")
    server = S3rver(binary, str(tmp_path_factory.mktemp("s3rver")), BUCKET)
    yield server
    server.close()


async def test_a_second_s3_implementation(s3rver: S3rver, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same loader against s3rver (node), so it is not tuned to one server's quirks."""
    for name in CHAIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_environment(S3rver.KEY_ID, S3rver.SECRET).items():
        monkeypatch.setenv(name, value)
    data = make_photo((160, 120))
    s3rver.put(BUCKET, "photos/ünï cat.jpg", data)
    s3rver.put(BUCKET, "photos/big.jpg", b"\x00" * (LIMIT + 1))
    source = S3Source(
        S3Options(endpoint=s3rver.endpoint, path_style=True, max_bytes=LIMIT), Allowlist.parse([f"s3://{BUCKET}/"])
    )
    image = await source.fetch(f"s3://{BUCKET}/photos/ünï cat.jpg")
    assert image.data == data and image.validator == "s3:" + hashlib.md5(data).hexdigest()
    assert await source.revalidate(f"s3://{BUCKET}/photos/ünï cat.jpg") == image.validator
    with pytest.raises(SourceNotFound):
        await source.fetch(f"s3://{BUCKET}/photos/missing.jpg")
    with pytest.raises(SourceTooLarge):
        await source.fetch(f"s3://{BUCKET}/photos/big.jpg")
    await source.aclose()


def test_virtual_hosted_addressing_puts_the_bucket_in_the_host() -> None:
    assert bucket_endpoint("https://minio.internal:9000", "media") == "https://media.minio.internal:9000"
