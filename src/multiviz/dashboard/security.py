"""What the server refuses: paths outside their folder, foreign Hosts and Origins, missing tokens.

Pure functions, tested with encoded ``../``, absolute paths and symlinks (tests/dashboard/test_security.py).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from pathlib import Path
from urllib.parse import unquote, urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
MAX_URL = 4096
MAX_BODY = 16_384
COOKIE = "multiviz_token"


def new_token() -> str:
    return secrets.token_hex(24)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def safe_path(root: Path, relative: str) -> Path | None:
    """``root / relative`` when it is a regular file inside ``root`` after decoding and resolving links;
    ``None`` for anything else (``..``, absolute paths, encoded forms, symlinks leaving ``root``)."""
    decoded = unquote(unquote(relative))
    if not decoded or "\x00" in decoded or "\\" in decoded or decoded.startswith(("/", "~")):
        return None
    parts = Path(decoded).parts
    if any(part in ("..", ".") for part in parts) or Path(decoded).is_absolute():
        return None
    base = root.resolve()
    candidate = (base / decoded).resolve()
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    return candidate


def token_matches(expected: str | None, given: str | None) -> bool:
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def host_name(host_header: str) -> str:
    """The host of a ``Host`` header without its port."""
    if host_header.startswith("["):
        return host_header.split("]")[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def origin_allowed(origin: str | None, host_header: str) -> bool:
    """A write may come from a page of this server only: its ``Origin`` (when the browser sends one, as
    every browser does on a cross-site POST) must name the same host and port as ``Host``."""
    if origin is None:
        return True  # not a browser (curl, a script): CSRF needs a browser
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == host_header


def host_allowed(host_header: str, bound: str, has_token: bool) -> bool:
    """Without a token the server answers loopback names only (no DNS rebinding onto 127.0.0.1)."""
    if has_token:
        return True
    name = host_name(host_header)
    return is_loopback(name) or name == bound
