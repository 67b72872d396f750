"""What a request asks for and who asks: negotiation, parameters, owner, cross-site."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs

from chalice.app import Request

from ..backends.keys import owner_id, principal_owner
from ..encoding import media_type
from ..params import JsonText
from .responses import HttpError

OWNER_COOKIE = "longtask_owner"
_OWNER_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


def _accept_quality(accept: str, wanted: str, least_rank: int = 0) -> float:
    """How much the Accept header likes `wanted`: the q of its most specific match.
    With `least_rank` 1, only a match naming the type (or its major type) counts."""
    best, best_rank = 0.0, least_rank - 1
    major = wanted.split("/", 1)[0]
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        q = 1.0
        for param in pieces[1:]:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        rank = {wanted: 2, f"{major}/*": 1, "*/*": 0}.get(media, -1)
        if rank > best_rank:
            best, best_rank = q, rank
    return best


def wants_json(request: Request) -> bool:
    if media_type(request.headers.get("content-type")) == "application/json":
        return True
    accept = request.headers.get("accept") or ""
    return _accept_quality(accept, "application/json") > _accept_quality(accept, "text/html")


def prefers_html(request: Request) -> bool:
    """Whether the caller is a browser asking for a page: its Accept names text/html and
    likes it at least as much as JSON. `*/*` alone (curl, programs) does not count."""
    accept = request.headers.get("accept") or ""
    html = _accept_quality(accept, "text/html", least_rank=1)
    return html > 0 and not wants_json(request)


def base_path(request: Request) -> str:
    """The prefix before our routes: "/api" behind API Gateway's stage, "" locally."""
    context = request.context or {}
    full = context.get("path") or ""
    routed = context.get("resourcePath") or ""
    for name, value in (request.uri_params or {}).items():
        routed = routed.replace("{" + name + "}", value)
    if routed and full.endswith(routed):
        return full[: len(full) - len(routed)].rstrip("/")
    return ""


def _body_text(request: Request, max_bytes: int) -> str:
    raw = request.raw_body or b""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    if len(raw) > max_bytes:
        raise HttpError(413, "too_large", f"the request body is over {max_bytes} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "invalid_body", "the request body is not UTF-8") from None


def _json_object(text: str) -> dict[str, list[Any]]:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, list[Any]]:
        grouped: dict[str, list[Any]] = {}
        for key, value in items:
            grouped.setdefault(key, []).append(value)
        return grouped

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        raise HttpError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HttpError(400, "invalid_json", "the request body must be a JSON object")
    return {
        key: [JsonText(v) if isinstance(v, str) else v for v in values]
        for key, values in data.items()
    }


def read_parameters(request: Request, max_bytes: int) -> dict[str, list[Any]]:
    """Every parameter of a start request, from its body and query string, by name."""
    text = _body_text(request, max_bytes)
    media = media_type(request.headers.get("content-type"))
    given: dict[str, list[Any]] = {}
    if text.strip():
        if media == "application/json":
            given = _json_object(text)
        elif media in ("application/x-www-form-urlencoded", ""):
            try:
                given = parse_qs(text, keep_blank_values=True, max_num_fields=200)
            except ValueError:
                raise HttpError(400, "invalid_body", "the form has too many fields") from None
        else:
            raise HttpError(
                415,
                "unsupported_media_type",
                f"send parameters as application/json or a form, not {media}",
            )
    query = request.query_params
    if query is not None:
        for name in query:
            given.setdefault(name, []).extend(query.getlist(name))
    return given


IDEMPOTENCY_HEADER = "Idempotency-Key"
FORM_TOKEN = "_token"
# Printable ASCII without space, as the IETF draft for the header advises: a key a
# program can log and compare byte for byte.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def idempotency_key(request: Request, given: dict[str, list[Any]]) -> str | None:
    """The start's idempotency key: the Idempotency-Key header of a program, else the
    hidden one-time token of an HTML form; None without either. 400 for a malformed one."""
    header = request.headers.get(IDEMPOTENCY_HEADER.lower())
    if header is not None:
        if not _IDEMPOTENCY_KEY.fullmatch(header):
            raise HttpError(
                400,
                "invalid_parameters",
                "the Idempotency-Key header is not valid",
                {IDEMPOTENCY_HEADER: "must be 1 to 255 visible ASCII characters"},
            )
        return str(header)
    tokens = given.get(FORM_TOKEN)
    if tokens is None:
        return None
    if len(tokens) != 1 or not isinstance(tokens[0], str):
        raise HttpError(
            400, "invalid_parameters", "_token is not valid", {FORM_TOKEN: "must be one text"}
        )
    if not tokens[0]:
        return None  # an empty token is no token: a form without one
    if not _IDEMPOTENCY_KEY.fullmatch(tokens[0]):
        raise HttpError(
            400,
            "invalid_parameters",
            "_token is not valid",
            {FORM_TOKEN: "must be 1 to 255 visible ASCII characters"},
        )
    return tokens[0]


def owner_token(request: Request) -> str | None:
    cookies = request.headers.get("cookie") or ""
    for part in cookies.split(";"):
        name, _, value = part.strip().partition("=")
        if name == OWNER_COOKIE and _OWNER_TOKEN.fullmatch(value):
            return value
    return None


def owner_of(token: str | None) -> str | None:
    """What the record keeps of the owner cookie: a hash, never the token itself."""
    return None if token is None else owner_id(token)


def principal_of(request: Request) -> str | None:
    """The caller named by a Chalice authorizer, where one is configured."""
    authorizer = (request.context or {}).get("authorizer") or {}
    principal = authorizer.get("principalId") if isinstance(authorizer, dict) else None
    return str(principal) if principal else None


def caller_owner(request: Request) -> str | None:
    """Who is asking, as task records store it: the authorizer's principal, or the cookie."""
    principal = principal_of(request)
    if principal is not None:
        return principal_owner(principal)
    return owner_of(owner_token(request))


def cross_site(request: Request) -> bool:
    """Whether a browser sent this request from another site (a CSRF attempt).

    Browsers say so in Sec-Fetch-Site; older ones at least send Origin on a
    POST, which must then name the host the request went to.
    """
    site = (request.headers.get("sec-fetch-site") or "").lower()
    if site:
        # Trusted where present: with Referrer-Policy no-referrer, Chromium sends
        # "Origin: null" even on a same-origin form post.
        return site not in ("same-origin", "none")
    origin: str | None = request.headers.get("origin")
    if origin is None:
        return False
    host = str(request.headers.get("host") or "").lower()
    return bool(origin.lower().split("://", 1)[-1].rstrip("/") != host)
