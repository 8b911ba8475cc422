"""Settings: frozen dataclasses, read once from ``THUMBSVC_*`` environment variables.

``Settings`` is what the application needs, ``ServerSettings`` how ``thumbsvc serve``
listens and bounds its connections, ``ClientSettings`` what ``thumbsvc url`` reads.
Each field is one variable: ``queue_timeout_s`` is ``THUMBSVC_QUEUE_TIMEOUT``. Its
bounds travel with the field, so a value is checked the same way whether it comes
from the environment, a command-line flag or a test that builds ``Settings(...)``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import re
import resource
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from thumbsvc import sizing

if TYPE_CHECKING:
    from thumbsvc.filters import WatermarkSpec

PREFIX = "THUMBSVC_"
SAMPLES_DIR = Path(__file__).parent / "samples"
DEFAULT_CACHE_CONTROL = "public, max-age=31536000, immutable"
MAX_OUTPUT_PX = 16384  # options.MAX_DIMENSION: no URL can ask for more
# File descriptors kept out of the connection cap: the origin pool (100 sockets), file reads (8), the
# process's own (standard streams, the event loop, the listening socket, logs, metrics files: about 20),
# and the connections accepted in one burst before the cap applies to them (server.ACCEPT_BACKLOG, about
# twice that many measured under a flood).
FD_RESERVE = 256
MAX_CONNECTIONS_DEFAULT = 4096
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
Flags = Mapping[str, "str | None"]  # command-line values by field name; None: not given

THUMBOR_SOURCES = ("media", "http")
# Fields that hold keys: never printed (a count and fingerprints instead).
SECRET_FIELDS = ("keys", "thumbor_key")

# Variables read by neither dataclass: the test suite's corpus location.
OTHER_NAMES = {"CORPUS"}


class ConfigError(ValueError):
    """A setting has a bad value; the message names the variable (or flag) and the value."""


@dataclass(frozen=True, slots=True)
class Range:
    """Bounds of a numeric setting: ``low <= value <= high``, or ``low < value`` when ``above``."""

    low: float
    high: float
    above: bool = False

    def check(self, value: float) -> str | None:
        """Given a value, return what is wrong with it, or None."""
        if (value > self.low if self.above else value >= self.low) and value <= self.high:
            return None
        if self.above:
            return f"Must be above {_number(self.low)} and at most {_number(self.high)}."
        return f"Must be from {_number(self.low)} to {_number(self.high)}."


def _number(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:g}"


def setting(
    default: Any = MISSING,
    low: float | None = None,
    high: float | None = None,
    *,
    above: bool = False,
    factory: Callable[[], Any] | None = None,
    shown: str | None = None,
) -> Any:
    """A dataclass field with its bounds and, for a computed default, the words that describe it."""
    metadata = {"range": Range(low, high, above) if low is not None and high is not None else None, "shown": shown}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def key_fingerprint(key: str) -> str:
    """Given a signing key, return the first 8 hex digits of its SHA-256: enough to tell keys apart, never the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


def describe_keys(keys: tuple[str, ...]) -> str:
    """Given signing keys, return how many there are and their fingerprints (``2 keys: 1a2b3c4d, 5e6f7a8b``)."""
    count = f"{len(keys)} key" if len(keys) == 1 else f"{len(keys)} keys"
    return f"{count}: {', '.join(key_fingerprint(k) for k in keys)}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the application needs to know, validated on construction.

    With no ``keys`` the service runs the embedded development default: a random
    per-process key, the bundled samples as media root and no remote sources.
    """

    keys: tuple[str, ...] = ()
    media_root: str | None = None
    allowed_sources: tuple[str, ...] = ()
    allow_private_networks: tuple[str, ...] = ()
    max_output_px: int = setting(4096, 1, MAX_OUTPUT_PX)
    max_source_pixels: int = setting(50_000_000, 1, 1_000_000_000)
    max_source_bytes: int = setting(25_000_000, 1, 2_000_000_000)
    max_frames: int = setting(100, 1, 100_000)
    max_animation_pixels: int = setting(250_000_000, 1, 100_000_000_000)
    connect_timeout_s: float = setting(3.0, 0, 600, above=True)
    fetch_timeout_s: float = setting(10.0, 0, 3600, above=True)
    max_redirects: int = setting(3, 0, 20)
    # Remote fetches at once (per process, and per origin host); four times as many may wait for their turn.
    fetch_concurrency: int = setting(16, 1, 10_000)
    fetch_concurrency_per_host: int = setting(8, 1, 10_000)
    render_slots: int = setting(low=1, high=1024, factory=_cpu_count, shown="CPU count")
    queue_size: int = setting(-1, 0, 100_000, shown="4 × slots")  # noqa: RUF001 (a times sign); -1: 4 per slot
    queue_timeout_s: float = setting(2.0, 0, 3600, above=True)
    cache_bytes: int = setting(64_000_000, 0, 10**12)
    cache_ttl_s: float = setting(60.0, 0, 86_400)
    source_cache_bytes: int = setting(128_000_000, 0, 10**12)
    source_cache_ttl_s: float = setting(10.0, 0, 86_400)
    # A 24 MP photo's shared decode (3000x2000 at 4 bytes a pixel) fits.
    decoded_cache_bytes: int = setting(32_000_000, 0, 10**12)
    decoded_cache_ttl_s: float = setting(5.0, 0, 86_400)
    # Estimated bytes of working memory (thumbsvc.memory) of the renders running at once; a render waits
    # until it fits beside those running. 0: no budget. -1: sized by thumbsvc.sizing from the process's
    # memory limit (what the caches and an idle process leave), else 100 MB per render slot.
    render_memory_budget: int = setting(-1, 0, 10**12, shown="from the memory limit or 100 MB a slot")
    # A render estimated over this is refused with 413 before decoding. -1: sized with the budget (all of
    # it under a memory limit, else 512 MB).
    max_render_memory: int = setting(-1, 1, 10**12, shown="from the memory limit or 512 MB")
    render_timeout_s: float = setting(10.0, 0, 3600, above=True)  # then the render is abandoned (503)
    refusal_cache_ttl_s: float = setting(60.0, 0, 86_400)  # a 413/415/422 of a source or request is remembered
    # After SIGTERM, answer /readyz 503 but keep serving this long before shutting down.
    drain_delay_s: float = setting(0.0, 0, 3600)
    shutdown_timeout_s: float = setting(10.0, 0, 3600, above=True)  # then wait this long for requests in flight
    cache_control: str = DEFAULT_CACHE_CONTROL
    expires_leeway_s: float = setting(0.0, 0, 86_400)  # an exp: URL still answers this long after its time
    error_max_age_s: int = setting(60, 0, 31_536_000)
    log_json: bool = False
    # Named watermarks a URL may ask for (wm:NAME); images under the media root, loaded at start-up.
    watermarks: tuple[WatermarkSpec, ...] = ()
    # S3 and S3-compatible stores (docs/sources.md). Credentials come only from the AWS credential chain.
    s3_endpoint: str | None = None  # e.g. https://<account>.r2.cloudflarestorage.com; None: AWS's own endpoints
    s3_region: str | None = None  # None: the chain's (AWS_REGION, AWS_DEFAULT_REGION, else us-east-1); "auto" for R2
    s3_path_style: bool | None = None  # None: path-style addressing when an endpoint is set, virtual-hosted otherwise
    # thumbor's URLs on the same host (docs/migrating.md): its keys (none: thumbor paths are not recognised),
    # whether "unsafe" paths are served, and what an image part without a scheme names.
    thumbor_key: tuple[str, ...] = ()
    thumbor_allow_unsafe: bool = False
    thumbor_sources: str = "media"
    dev_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False, metadata={"internal": True})
    # The process's memory limit (cgroup), read once; the sizes below are derived from it.
    memory_limit: int | None = field(default_factory=sizing.memory_limit, metadata={"internal": True})
    # Where render_memory_budget and max_render_memory came from (check-config, the start-up line).
    render_memory_source: str = field(default="", repr=False, metadata={"internal": True})

    def __post_init__(self) -> None:
        if self.queue_size == -1:
            object.__setattr__(self, "queue_size", 4 * self.render_slots)
        self._size_render_memory()
        check_ranges(self)
        if not _is_header_value(self.cache_control):
            raise ConfigError(f"Config '{PREFIX}CACHE_CONTROL' has value {self.cache_control!r}. Not a header value.")
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
        if self.thumbor_sources not in THUMBOR_SOURCES:
            raise ConfigError(
                f"Config '{PREFIX}THUMBOR_SOURCES' has value {self.thumbor_sources!r}. Must be media or http."
            )
        if any(not key for key in self.thumbor_key):
            raise ConfigError(f"{PREFIX}THUMBOR_KEY holds an empty key.")

    def _size_render_memory(self) -> None:
        """Fill in the budget and the ceiling left at -1, from the memory limit (``thumbsvc.sizing``)."""
        budget, ceiling = self.render_memory_budget, self.max_render_memory
        if budget != -1 and ceiling != -1:
            object.__setattr__(self, "render_memory_source", "THUMBSVC_RENDER_MEMORY_BUDGET")
            return
        caches = self.cache_bytes + self.source_cache_bytes + self.decoded_cache_bytes
        try:
            sized = sizing.render_memory(self.memory_limit, slots=self.render_slots, cache_bytes=caches)
        except ValueError as exc:
            raise ConfigError(f"Config '{PREFIX}RENDER_MEMORY_BUDGET': {exc}.") from None
        source = sized.source
        if budget == -1:
            budget = sized.budget
        else:
            source = f"{PREFIX}RENDER_MEMORY_BUDGET; ceiling {sized.source}"
        object.__setattr__(self, "render_memory_budget", budget)
        object.__setattr__(self, "max_render_memory", sized.ceiling if ceiling == -1 else ceiling)
        object.__setattr__(self, "render_memory_source", source)

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

    def __repr__(self) -> str:
        # Never a key: how many there are and their fingerprints.
        parts = [f"keys=<{describe_keys(self.keys)}>" if self.keys else "keys=()"]
        parts += [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr and f.name not in SECRET_FIELDS]
        if self.thumbor_key:
            parts.append(f"thumbor_key=<{describe_keys(self.thumbor_key)}>")
        return f"Settings({', '.join(parts)})"

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

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Given an environment, return Settings; raise ConfigError naming a bad or unknown variable."""
        check_unknown(environ)
        settings = cls(**read_fields(cls, environ))
        if settings.allowed_sources:
            # Checked here, at start-up, not only when the HTTP source is built (in each worker).
            # Imported here: the allowlist needs httpx, which only a service with remote sources loads.
            from thumbsvc.sources.allowlist import Allowlist

            Allowlist.parse(settings.allowed_sources)
        return settings


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How ``thumbsvc serve`` listens: its address, its processes and the bounds on client connections."""

    host: str = "127.0.0.1"
    port: int = setting(8000, 1, 65535)
    workers: int = setting(1, 1, 512)
    limit_max_requests: int = setting(0, 0, 10**9)  # recycle a worker after this many requests; 0: never
    log_level: str = "info"
    # The whole request head must arrive within this, from the connection's opening or the first byte of a
    # later request on it; trickling bytes does not extend it (slowloris).
    header_timeout_s: float = setting(10.0, 0, 600, above=True)
    keepalive_timeout_s: float = setting(5.0, 0, 3600, above=True)  # an idle connection between requests
    # Open client connections per process; -1: sized from the file-descriptor limit (RLIMIT_NOFILE).
    max_connections: int = setting(-1, 1, 1_000_000, shown="from RLIMIT_NOFILE")
    max_url_length: int = setting(8192, 256, 65_536)  # bytes of the request target; longer: 414

    def __post_init__(self) -> None:
        room = fd_room()
        if room < 16:
            raise ConfigError(
                f"The file-descriptor limit (RLIMIT_NOFILE {fd_limit()}) leaves no room for client connections"
                f" after the {FD_RESERVE} kept for origins and files: raise it (ulimit -n)."
            )
        if self.max_connections == -1:
            object.__setattr__(self, "max_connections", min(MAX_CONNECTIONS_DEFAULT, room))
        check_ranges(self)
        if self.max_connections > room:
            raise ConfigError(
                f"Config '{PREFIX}MAX_CONNECTIONS' has value {self.max_connections}. Must be at most {room}:"
                f" the file-descriptor limit (RLIMIT_NOFILE {fd_limit()}) less {FD_RESERVE} for origins and files."
            )
        if not self.host.strip():
            raise ConfigError(f"Config '{PREFIX}HOST' has value {self.host!r}. Not a host name or address.")
        if self.log_level not in LOG_LEVELS:
            levels = ", ".join(LOG_LEVELS)
            raise ConfigError(f"Config '{PREFIX}LOG_LEVEL' has value {self.log_level!r}. Must be one of {levels}.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str], flags: Flags | None = None) -> ServerSettings:
        """Given an environment and the command-line flags given (by field name), return the settings.

        A flag wins over its variable; raise ConfigError naming the flag or variable that is bad.
        """
        return cls(**read_fields(cls, environ, flags))


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """What ``thumbsvc url`` reads besides ``THUMBSVC_KEY``: where the service is."""

    base_url: str = DEFAULT_BASE_URL

    def __post_init__(self) -> None:
        try:
            _base_url(self.base_url)
        except ValueError as exc:
            raise ConfigError(f"Config '{PREFIX}BASE_URL' has value {self.base_url!r}. {exc}") from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str], flags: Flags | None = None) -> ClientSettings:
        return cls(**read_fields(cls, environ, flags))


SETTINGS_CLASSES: tuple[type[Any], ...] = (Settings, ServerSettings, ClientSettings)


def env_name(name: str) -> str:
    """Given a field name, return its variable name without the prefix: queue_timeout_s -> QUEUE_TIMEOUT."""
    return "KEY" if name == "keys" else name.removesuffix("_s").upper()


def flag_name(name: str) -> str:
    """Given a field name, return its command-line flag: limit_max_requests -> --limit-max-requests."""
    return "--" + env_name(name).lower().replace("_", "-")


def setting_fields(cls: type[Any]) -> Iterator[Field[Any]]:
    """Given a settings class, return its fields that are read from the environment."""
    return (f for f in fields(cls) if not f.metadata.get("internal"))


def known_names() -> set[str]:
    """Every ``THUMBSVC_*`` variable this package reads, with the prefix."""
    names = {PREFIX + env_name(f.name) for cls in SETTINGS_CLASSES for f in setting_fields(cls)}
    return names | {PREFIX + name for name in OTHER_NAMES}


def check_unknown(environ: Mapping[str, str]) -> None:
    """Raise ConfigError for a ``THUMBSVC_*`` variable that nothing reads (a typo would go unnoticed)."""
    known = known_names()
    for name in environ:
        if name.startswith(PREFIX) and name not in known:
            raise ConfigError(f"Unknown setting '{name}'.")


def read_fields(cls: type[Any], environ: Mapping[str, str], flags: Flags | None = None) -> dict[str, Any]:
    """Given a settings class, an environment and flags, return the constructor arguments they set."""
    kwargs: dict[str, Any] = {}
    for f in setting_fields(cls):
        env = PREFIX + env_name(f.name)
        flag = flags.get(f.name) if flags else None
        if flag is not None:
            kwargs[f.name] = parse_field(f, flag, f"Option '{flag_name(f.name)}'")
        elif env in environ:
            kwargs[f.name] = parse_field(f, environ[env], f"Config '{env}'")
    return kwargs


def parse_field(f: Field[Any], raw: str, label: str) -> Any:
    """Given a field, the text given for it and where it came from, return its value, checked against its bounds."""
    if f.name == "keys":
        keys = _csv(raw)
        if not keys:
            # Never echo the value: it is meant to be a secret.
            raise ConfigError(f"{PREFIX}KEY is set but holds no key.")
        return keys
    cast = _CASTS.get(f.name) or _cast_for(f.type)
    try:
        value = cast(raw)
    except ValueError as exc:
        raise ConfigError(f"{label} has value {raw!r}. {exc}") from None
    bounds: Range | None = f.metadata.get("range")
    problem = bounds.check(value) if bounds is not None else None
    if problem:
        raise ConfigError(f"{label} has value {raw!r}. {problem}")
    return value


def check_ranges(settings: Any) -> None:
    """Raise ConfigError naming the variable of the first field of ``settings`` outside its bounds."""
    for f in setting_fields(type(settings)):
        bounds: Range | None = f.metadata.get("range")
        value = getattr(settings, f.name)
        if bounds is not None and (problem := bounds.check(value)):
            raise ConfigError(f"Config '{PREFIX}{env_name(f.name)}' has value {value!r}. {problem}")


def fd_limit() -> int:
    """The soft limit on this process's open files (RLIMIT_NOFILE)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def fd_room() -> int:
    """How many client connections the file-descriptor limit leaves room for, after FD_RESERVE."""
    return fd_limit() - FD_RESERVE


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _int(raw: str) -> int:
    try:
        return int(raw.strip().replace("_", ""))
    except ValueError:
        raise ValueError("Not a valid int.") from None


def _float(raw: str) -> float:
    try:
        value = float(raw.strip().replace("_", ""))
    except ValueError:
        raise ValueError("Not a valid number.") from None
    if not math.isfinite(value):
        raise ValueError("Not a finite number.")
    return value


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("Not a valid boolean (true or false).")


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("Must not be empty.")
    return raw.strip()


def _log_level(raw: str) -> str:
    level = raw.strip().lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"Must be one of {', '.join(LOG_LEVELS)}.")
    return level


def _base_url(raw: str) -> str:
    url = _text(raw)
    if not url.startswith(("http://", "https://")) or any(c in url for c in " ?#"):
        raise ValueError("Must be an http:// or https:// URL without a query string.")
    return url


def _is_header_value(text: str) -> bool:
    return bool(text.strip()) and all(" " <= c <= "~" for c in text)


def _keys(raw: str) -> tuple[str, ...]:
    keys = _csv(raw)
    if not keys:
        raise ValueError("Holds no key.")
    return keys


def _thumbor_sources(raw: str) -> str:
    value = raw.strip().lower()
    if value not in THUMBOR_SOURCES:
        raise ValueError("Must be media (a path under the media root) or http (thumbor's http loader).")
    return value


def _watermarks(raw: str) -> tuple[WatermarkSpec, ...]:
    from thumbsvc.filters import parse_watermarks  # Pillow only when watermarks are configured

    return tuple(parse_watermarks(raw).values())


_CASTS: dict[str, Callable[[str], Any]] = {
    "allowed_sources": _csv,  # empty: none
    "allow_private_networks": _csv,
    "log_level": _log_level,
    "base_url": _base_url,
    "watermarks": _watermarks,
    "s3_endpoint": _text,
    "s3_region": _text,
    "thumbor_key": _keys,  # a key is never echoed: only an empty value is refused, and it holds nothing
    "thumbor_sources": _thumbor_sources,
}


def _cast_for(type_name: object) -> Callable[[str], Any]:
    # Annotations are text here (``from __future__ import annotations``); "int | None" casts as "int".
    return {"int": _int, "float": _float, "bool": _bool}.get(str(type_name).removesuffix(" | None"), _text)
