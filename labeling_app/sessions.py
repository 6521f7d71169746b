"""Each Gradio session belongs to the user who opened it; export files belong to admins.

A Gradio page names its session by a random `session_hash` made in the browser, and every route
that streams, joins, cancels or keeps alive that session's events takes the hash from the request:
`/gradio_api/queue/data?session_hash=`, the JSON body of `/gradio_api/queue/join` and
`/gradio_api/cancel`, the path of `/gradio_api/heartbeat/{hash}`. Gradio checks that the caller is
logged in, not that the session is theirs, so a logged-in user who learned another's hash could read
that session's results (an item and its token, an admin's export link). `SessionOwners` closes it:
the first logged-in request naming a hash binds the hash to that user, and a request naming it from
anyone else (or from nobody, on the routes Gradio leaves open) gets 403 before Gradio sees it.
Routes that name an event id instead (`/gradio_api/call/{api}/{event_id}`,
`/gradio_api/stream/{event_id}`) are checked against the session that event belongs to.

Export files (named `EXPORT_PREFIX...`) are served by `/gradio_api/file=` to admins only, so an
export link is no use to a labeler who got hold of it.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Callable
from urllib.parse import unquote

EXPORT_PREFIX = "rlhf-export-"
API = "/gradio_api/"


class SessionOwners:
    """ASGI middleware for the FastAPI app Gradio builds (pass it through `launch(app_kwargs=
    {"middleware": [...]})`). `is_admin(name)` says whether a user may download export files.
    A binding unused for `ttl_seconds` (default a day) is forgotten, so the table stays small."""

    def __init__(self, app, is_admin: Callable[[str], bool], ttl_seconds: float = 86400.0):
        self.app, self.is_admin, self.ttl = app, is_admin, ttl_seconds
        self.owners: dict[str, tuple[str, float]] = {}  # session hash -> (user, last seen)
        self.lock = threading.Lock()
        self.next_prune = 1024

    async def __call__(self, scope, receive, send):
        at = scope.get("path", "").find(API) if scope["type"] == "http" else -1
        if at < 0:
            return await self.app(scope, receive, send)
        route = scope["path"][at + len(API):]
        gradio_app = scope["app"]
        user = _user(gradio_app, scope)
        if route.startswith(("file=", "file/")) and unquote(route).rsplit("/", 1)[-1].startswith(EXPORT_PREFIX):
            if user is not None and not self.is_admin(user):  # no user at all: Gradio's login check says 401
                return await _refuse(send, "export files are for admins")
            return await self.app(scope, receive, send)
        hashes, event_ids = _named_in_url(scope, route)
        if scope["method"] == "POST" and _is_json(scope):
            body, receive = await _buffered(receive)
            hashes, event_ids = hashes + _named_in_body(body, "session_hash"), event_ids + _named_in_body(body, "event_id")
        hashes += [h for h in (_session_of(gradio_app, e) for e in event_ids) if h]
        if not all(self._claim(h, user) for h in hashes):
            return await _refuse(send, "this session belongs to another user")
        return await self.app(scope, receive, send)

    def _claim(self, session_hash: str, user: str | None) -> bool:
        """True when `session_hash` is `user`'s (binding it to them if nobody holds it yet)."""
        now = time.monotonic()
        with self.lock:
            owner = self.owners.get(session_hash)
            if owner is None or now - owner[1] > self.ttl:
                if user is None:  # Gradio's login check answers anonymous requests on its routes
                    return True
                self.owners[session_hash] = (user, now)
                self._prune(now)
                return True
            if owner[0] != user:
                return False
            self.owners[session_hash] = (user, now)
            return True

    def _prune(self, now: float) -> None:
        if len(self.owners) < self.next_prune:
            return
        self.owners = {h: o for h, o in self.owners.items() if now - o[1] <= self.ttl}
        self.next_prune = 2 * len(self.owners) + 1024


def _user(gradio_app, scope) -> str | None:
    """The logged-in user of a request, as Gradio's own `get_current_user` finds it: the session
    cookie's token in `app.tokens`."""
    from starlette.requests import HTTPConnection

    cookies = HTTPConnection(scope).cookies
    cookie_id = getattr(gradio_app, "cookie_id", None)
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return getattr(gradio_app, "tokens", {}).get(token) if token else None


def _named_in_url(scope, route: str) -> tuple[list[str], list[str]]:
    """(session hashes, event ids) a request names in its query string or path."""
    from starlette.requests import HTTPConnection

    hashes = HTTPConnection(scope).query_params.getlist("session_hash")
    parts = route.split("/")
    events = []
    if parts[0] == "heartbeat" and len(parts) > 1:
        hashes.append(parts[1])
    elif parts[0] == "stream" and len(parts) > 1:
        # POST stream/{event_id}[/close]; GET stream/{session_hash}/{run}/{component}/...
        (events if scope["method"] == "POST" else hashes).append(parts[1])
    elif parts[0] == "call" and scope["method"] == "GET" and len(parts) >= 3:
        events.append(parts[-1])  # call/{api}/{event_id} and call/v2/{api}/{event_id}
    return hashes, events


def _session_of(gradio_app, event_id: str) -> str | None:
    """The session hash an event id belongs to, from Gradio's queue (None if it is unknown: then
    Gradio has nothing to show for it either)."""
    queue = gradio_app.get_blocks()._queue
    event = queue.event_ids_to_events.get(event_id)
    if event is not None:
        return event.session_hash
    return next((s for s, ids in queue.pending_event_ids_session.items() if event_id in ids), None)


def _is_json(scope) -> bool:
    headers = dict(scope.get("headers") or [])
    return headers.get(b"content-type", b"").split(b";")[0].strip() == b"application/json"


async def _buffered(receive):
    """(the request body, a `receive` that hands the same body to the app again)."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body, replayed = b"".join(chunks), False

    async def again():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return body, again


def _named_in_body(body: bytes, key: str) -> list[str]:
    try:
        value = json.loads(body).get(key)
    except (ValueError, AttributeError):
        return []
    return [value] if isinstance(value, str) and value else []


async def _refuse(send, reason: str) -> None:
    payload = json.dumps({"detail": reason}).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
