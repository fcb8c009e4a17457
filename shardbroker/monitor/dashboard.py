"""The /dashboard page and the files it loads, read from the package (monitor/static/).

Owner: the supervisor (called by monitor/http.py); nothing here runs unless the page is
asked for. The page is self-contained: its HTML names its script, style sheet and icon by
URLs relative to the monitoring port's base path (a ``<base href>`` filled in here), and
the script reads the JSON endpoints of the same port. The Content-Security-Policy sent with
it lets the browser load nothing from anywhere else.
"""

from __future__ import annotations

import html
from importlib import resources
from pathlib import PurePosixPath

PAGE = "dashboard.html"
# What a file under /static/ may be, by its suffix; anything else is not served.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'self'; form-action 'none'; frame-ancestors 'none'"
)
_BASE_MARK = "{{base}}"


def _static_file(name: str) -> bytes | None:
    """The bytes of monitor/static/<name>; None for a name that is not a plain file there."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    entry = resources.files("shardbroker.monitor").joinpath("static", name)
    if not entry.is_file():
        return None
    return entry.read_bytes()


def page(base_path: str) -> bytes:
    """The dashboard's HTML, its relative URLs resolved under `base_path` ("" or "/x")."""
    text = (_static_file(PAGE) or b"").decode()
    return text.replace(_BASE_MARK, html.escape(base_path + "/", quote=True)).encode()


def asset(name: str) -> tuple[bytes, str] | None:
    """(bytes, content type) of a file the page loads; None when there is no such file."""
    content_type = CONTENT_TYPES.get(PurePosixPath(name).suffix)
    if content_type is None or name == PAGE:
        return None
    body = _static_file(name)
    return None if body is None else (body, content_type)
