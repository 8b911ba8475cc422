"""Settings: one frozen dataclass, read once from ``THUMBSVC_*`` environment variables."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thumbsvc.filters import WatermarkSpec
from urllib.parse import urlsplit

PREFIX = "THUMBSVC_"
# The default memory budget per render slot: a 24 MP progressive JPEG render needs about 99 MB.
MEMORY_BUDGET_PER_SLOT = 55_000_000
SAMPLES_DIR = Path(__file__).parent / "samples"
DEFAULT_CACHE_CONTROL = "public, max-age=31536000, immutable"


class ConfigError(ValueError):
    """A setting has a bad value; the message names the variable and the value."""


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service needs to know, validated on construction.

    With no ``keys`` the service runs the embedded development default: a random
    per-process key, the bundled samples as media root and no remote sources.
    """

    keys: tuple[str, ...] = ()
    media_root: str | None = None
    allowed_sources: tuple[str, ...] = ()
    allow_private_networks: tuple[str, ...] = ()
    max_output_px: int = 4096
    max_source_pixels: int = 50_000_000
    max_source_bytes: int = 25_000_000
    max_frames: int = 100
    max_animation_pixels: int = 250_000_000
    connect_timeout_s: float = 3.0
    fetch_timeout_s: float = 10.0
    max_redirects: int = 3
    # Remote fetches at once (per process, and per origin host); as many again times FETCH_QUEUE_FACTOR wait.
    fetch_concurrency: int = 16
    fetch_concurrency_per_host: int = 8
    render_slots: int = field(default_factory=_cpu_count)
    queue_size: int = -1  # -1: four per render slot
    queue_timeout_s: float = 2.0
    cache_bytes: int = 64_000_000
    cache_ttl_s: float = 60.0
    source_cache_bytes: int = 128_000_000
    source_cache_ttl_s: float = 10.0
    decoded_cache_bytes: int = 32_000_000  # a 24 MP photo's shared decode (3000x2000 at 4 bytes a pixel) fits
    decoded_cache_ttl_s: float = 5.0
    # Estimated bytes of working memory (thumbsvc.memory) of the renders running at once; one larger runs
    # alone. 0: no budget. -1: MEMORY_BUDGET_PER_SLOT per render slot (110 MB for 2 slots, which keeps one
    # process near 150 MB on 24 MP JPEGs: docs/performance.md).
    render_memory_budget: int = -1
    # A render estimated over this is refused with 413 before decoding: one such render, the caches and an
    # idle process fit the 1 GiB memory limit of deploy/k8s (docs/operations.md, "Memory").
    max_render_memory: int = 512_000_000
    render_timeout_s: float = 10.0  # a render still running after this is abandoned at its next step (503)
    refusal_cache_ttl_s: float = 60.0  # seconds a 413/415/422 of a source or a request is remembered
    drain_delay_s: float = 0.0  # after SIGTERM, answer /readyz 503 but keep serving this long before shutting down
    shutdown_timeout_s: float = 10.0  # then wait this long for requests in flight
    cache_control: str = DEFAULT_CACHE_CONTROL
    expires_leeway_s: float = 0.0  # an exp: URL still answers this long after its time (clock skew)
    error_max_age_s: int = 60
    log_json: bool = False
    # Named watermarks a URL may ask for (wm:NAME); images under the media root, loaded at start-up.
    watermarks: tuple[WatermarkSpec, ...] = ()
    # S3 and S3-compatible stores (docs/sources.md). Credentials come only from the AWS credential chain.
    s3_endpoint: str | None = None  # e.g. https://<account>.r2.cloudflarestorage.com; None: AWS's own endpoints
    s3_region: str | None = None  # None: the chain's (AWS_REGION, AWS_DEFAULT_REGION, else us-east-1); "auto" for R2
    s3_path_style: bool | None = None  # None: path-style addressing when an endpoint is set, virtual-hosted otherwise
    dev_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    def __post_init__(self) -> None:
        if self.queue_size == -1:
            object.__setattr__(self, "queue_size", 4 * self.render_slots)
        if self.render_memory_budget == -1:
            object.__setattr__(self, "render_memory_budget", MEMORY_BUDGET_PER_SLOT * self.render_slots)
        for name in (
            "max_output_px",
            "max_source_pixels",
            "max_source_bytes",
            "max_frames",
            "render_slots",
            "fetch_concurrency",
            "fetch_concurrency_per_host",
            "max_render_memory",
        ):
            self._require(name, getattr(self, name) >= 1, ">= 1")
        for name in (
            "queue_size",
            "cache_bytes",
            "source_cache_bytes",
            "decoded_cache_bytes",
            "max_redirects",
            "error_max_age_s",
            "render_memory_budget",
            "cache_ttl_s",
            "source_cache_ttl_s",
            "decoded_cache_ttl_s",
            "drain_delay_s",
            "refusal_cache_ttl_s",
            "expires_leeway_s",
        ):
            self._require(name, getattr(self, name) >= 0, ">= 0")
        for name in (
            "connect_timeout_s",
            "fetch_timeout_s",
            "queue_timeout_s",
            "shutdown_timeout_s",
            "render_timeout_s",
        ):
            self._require(name, getattr(self, name) > 0, "> 0")
        for cidr in self.allow_private_networks:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ConfigError(
                    f"Config '{PREFIX}ALLOW_PRIVATE_NETWORKS' has value {cidr!r}. Not a CIDR network."
                ) from exc
        if self.media_root is not None and not Path(self.media_root).is_dir():
            raise ConfigError(f"Config '{PREFIX}MEDIA_ROOT' has value {self.media_root!r}. Not a directory.")
        self._check_s3()

    def _check_s3(self) -> None:
        if self.s3_endpoint is not None:
            parts = urlsplit(self.s3_endpoint)
            if "@" in parts.netloc:
                # The value is not repeated: it holds a secret. Credentials come from the AWS chain only.
                raise ConfigError(f"Config '{PREFIX}S3_ENDPOINT' may not carry credentials (user@host).")
            try:
                valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
            except ValueError:
                valid = False
            if not valid or parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ConfigError(
                    f"Config '{PREFIX}S3_ENDPOINT' has value {self.s3_endpoint!r}. "
                    "Must be an http:// or https:// URL of a host (and port), with its scheme."
                )
        if self.s3_region is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", self.s3_region):
            raise ConfigError(
                f"Config '{PREFIX}S3_REGION' has value {self.s3_region!r}. Must be a region name (or 'auto')."
            )

    @property
    def dev_mode(self) -> bool:
        """True when no key is configured: the embedded development default."""
        return not self.keys

    @property
    def signing_keys(self) -> tuple[str, ...]:
        return self.keys or (self.dev_key,)

    @property
    def effective_media_root(self) -> str | None:
        if self.media_root is not None:
            return self.media_root
        return str(SAMPLES_DIR) if self.dev_mode else None

    def _require(self, name: str, valid: bool, rule: str) -> None:
        if not valid:
            raise ConfigError(f"Config '{PREFIX}{env_name(name)}' has value {getattr(self, name)!r}. Must be {rule}.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Given an environment, return Settings; raise ConfigError naming a bad variable."""
        kwargs: dict[str, Any] = {}
        known = {env_name(f.name) for f in fields(cls) if f.name != "dev_key"}
        for name in environ:
            if name.startswith(PREFIX) and name[len(PREFIX) :] not in known | _CLI_NAMES:
                raise ConfigError(f"Unknown setting '{name}'.")
        for f in fields(cls):
            if f.name == "dev_key":
                continue
            env = PREFIX + env_name(f.name)
            if env not in environ:
                continue
            raw = environ[env]
            cast = _CASTS.get(f.name, _cast_for(f.type))
            try:
                kwargs[f.name] = cast(raw)
            except ValueError as exc:
                raise ConfigError(f"Config '{env}' has value {raw!r}. {exc}") from exc
        return cls(**kwargs)


# Variables read by the command line, not by Settings.
_CLI_NAMES = {"HOST", "PORT", "WORKERS", "LIMIT_MAX_REQUESTS", "CORPUS"}


def env_name(name: str) -> str:
    """Given a Settings field name, return its variable name without the prefix: queue_timeout_s -> QUEUE_TIMEOUT."""
    return "KEY" if name == "keys" else name.removesuffix("_s").upper()


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _int(raw: str) -> int:
    try:
        return int(raw.strip().replace("_", ""))
    except ValueError:
        raise ValueError("Not a valid int.") from None


def _float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError("Not a valid number.") from None


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("Not a valid boolean.")


def _str(raw: str) -> str:
    return raw


def _watermarks(raw: str) -> tuple[WatermarkSpec, ...]:
    from thumbsvc.filters import parse_watermarks  # Pillow only when watermarks are configured

    return tuple(parse_watermarks(raw).values())


_CASTS: dict[str, Callable[[str], Any]] = {
    "watermarks": _watermarks,
    "keys": _csv,
    "allowed_sources": _csv,
    "allow_private_networks": _csv,
    "media_root": lambda raw: raw or None,
    "s3_endpoint": lambda raw: raw.strip() or None,
    "s3_region": lambda raw: raw.strip() or None,
    "s3_path_style": lambda raw: _bool(raw) if raw.strip() else None,
}


def _cast_for(type_name: object) -> Callable[[str], Any]:
    return {"int": _int, "float": _float, "bool": _bool, "str": _str}.get(str(type_name), _str)
