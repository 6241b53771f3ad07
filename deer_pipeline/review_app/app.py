"""The review web app (Starlette): queue, deer and list pages, crops, one POST for decisions.

Server-rendered pages with plain HTML forms (the mouse works without JavaScript); a small script
maps keys to those same forms (M, N, U, S, arrows). Every state change is ``POST /decisions``,
which demands the page's CSRF token, an ``Origin`` (or ``Referer``) of this very server and a
``Host`` it serves (no DNS rebinding), else 403. Decisions go through ``apply_decision`` with the
state token of the deer as shown, so a second tab deciding on a deer that changed gets 409 with a
message, and an identity run holding the lock makes it wait a few seconds, then 503 with a
message; nothing is ever lost silently. Unknown deer, detections or crops give 404.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import psycopg2.pool
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from deer_pipeline.db.connect import libpq_url
from deer_pipeline.reid.matching import MatchConfig
from deer_pipeline.reid.review import (
    DecisionConflict,
    IdentityBusy,
    ReviewError,
    UnknownObject,
    deer_state,
    last_reviewed,
    no_streak,
)
from deer_pipeline.review_app import pages
from deer_pipeline.review_app.crops import CropStore
from deer_pipeline.review_app.decide import LOCK_TIMEOUT_S, Decision, decide
from deer_pipeline.review_app.queue import STOP_AFTER, ProposalQueue
from deer_pipeline.vocabulary import CORRECTION_CLASSES, SEXES

HERE = Path(__file__).resolve().parent
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class ReviewApp:
    """The app's state: database pool, proposal queue, crops, CSRF secret, reviewer.

    Args:
        database_url: the data database.
        image_root: ``DEER_IMAGE_ROOT``.
        crop_dir: crop cache folder.
        reviewer: the name recorded with every decision.
        hosts: host names the server answers to (``Host`` header, port ignored).
        match: matching settings for class corrections that re-identify a detection.
        queue: the proposal queue (default settings if None).
        lock_timeout_s: how long a decision waits for an identity run holding the lock.
    """

    def __init__(
        self,
        database_url: str,
        image_root: Path,
        crop_dir: Path,
        reviewer: str,
        hosts: tuple[str, ...] = LOCAL_HOSTS,
        match: MatchConfig | None = None,
        queue: ProposalQueue | None = None,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
    ):
        self.pool = psycopg2.pool.ThreadedConnectionPool(1, 8, libpq_url(database_url))
        self.crops = CropStore(image_root, crop_dir)
        self.reviewer = reviewer
        self.hosts = {h.lower() for h in hosts}
        self.match = match
        self.queue = queue or ProposalQueue()
        self.ranking: threading.Thread | None = None
        self.lock_timeout_s = lock_timeout_s
        self.csrf = secrets.token_urlsafe(32)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))

    @contextmanager
    def connection(self):
        """A pooled connection, rolled back (reads) and returned after use."""
        conn = self.pool.getconn()
        try:
            yield conn
        finally:
            if not conn.closed:
                conn.rollback()
            self.pool.putconn(conn)

    def start_ranking(self) -> threading.Thread:
        """Build the first ranking in the background, so the server answers at once."""

        def build():
            with self.connection() as conn, conn.cursor() as cur:
                self.proposals(cur, limit=1)

        thread = threading.Thread(target=build, name="review-ranking", daemon=True)
        thread.start()
        self.ranking = thread
        return thread

    def building(self) -> bool:
        """Whether the first ranking is being built in the background right now."""
        return (
            self.ranking is not None and self.ranking.is_alive() and not self.queue.ready.is_set()
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool.closeall()

    def proposals(self, cur, limit: int | None) -> tuple[list, int]:
        """The best ``limit`` proposals and how many there are (the queue is shared)."""
        with self.queue.lock:
            return self.queue.proposals(cur, limit=limit), self.queue.last_total

    # -- request checks -------------------------------------------------------------------
    def host_allowed(self, request: Request) -> bool:
        """Whether the ``Host`` header names this server (a guard against DNS rebinding)."""
        host = request.headers.get("host", "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return "*" in self.hosts or name in self.hosts

    def same_origin(self, request: Request) -> bool:
        """Whether the request's ``Origin`` (or ``Referer``) is this server."""
        host = request.headers.get("host", "")
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            referer = request.headers.get("referer")
            if not referer:
                return False
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        return origin == f"{request.url.scheme}://{host}"

    def page(self, request: Request, name: str, context: dict, status: int = 200) -> Response:
        """Render a template with the common context."""
        return self.templates.TemplateResponse(
            request,
            name,
            {"csrf": self.csrf, "reviewer": self.reviewer, **context},
            status_code=status,
        )


def _int(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def queue_page(request: Request) -> Response:
    """``GET /``: the proposal at position ``at`` (0: the best), with both sides."""
    app: ReviewApp = request.app.state.review
    at = max(0, _int(request.query_params.get("at"), 0))
    if app.building():  # the first ranking is being built: say so, look again
        return app.page(request, "building.html", {"message": request.query_params.get("msg")})
    with app.connection() as conn, conn.cursor() as cur:
        ranked, total = app.proposals(cur, limit=at + 1)
        if at >= len(ranked) and ranked:
            at = len(ranked) - 1
        proposal = ranked[at] if ranked else None
        sides, token, tokens = {}, None, {}
        if proposal is not None:
            sides = pages.summaries(cur, proposal.deer)
            token = deer_state(cur, proposal.deer)
            tokens = {d: deer_state(cur, [d]) for d in proposal.deer}
        history = last_reviewed(cur)
        streak = no_streak(cur, STOP_AFTER)
    return app.page(
        request,
        "queue.html",
        {
            "proposal": proposal,
            "sides": sides,
            "token": token,
            "tokens": tokens,
            "at": at,
            "total": total,
            "classes": CORRECTION_CLASSES,
            "message": request.query_params.get("msg"),
            "history": history,
            "suggest_stop": streak >= STOP_AFTER,
            "stop_after": STOP_AFTER,
        },
    )


def deer_page(request: Request) -> Response:
    """``GET /deer/{id}``: every sighting of one deer on a timeline, split and class forms."""
    app: ReviewApp = request.app.state.review
    deer_id = request.path_params["deer_id"]
    with app.connection() as conn, conn.cursor() as cur:
        found = pages.summaries(cur, [deer_id], crops=0)
        if deer_id not in found:
            return app.page(request, "missing.html", {"what": f"deer {deer_id}"}, status=404)
        rows = pages.sightings(cur, deer_id)
        token = deer_state(cur, [deer_id])
    days: dict = {}
    for row in rows:
        days.setdefault(row["when"].date() if row["when"] else None, []).append(row)
    return app.page(
        request,
        "deer.html",
        {
            "deer": found[deer_id],
            "days": days,
            "token": token,
            "classes": CORRECTION_CLASSES,
            "message": request.query_params.get("msg"),
        },
    )


def list_page(request: Request) -> Response:
    """``GET /deer``: deer filtered by location, sex, dates and number of sightings."""
    app: ReviewApp = request.app.state.review
    q = request.query_params
    from datetime import date

    def day(name):
        try:
            return date.fromisoformat(q.get(name, ""))
        except ValueError:
            return None

    filters = pages.ListFilter(
        location=q.get("location") or None,
        sex=q.get("sex") if q.get("sex") in SEXES else None,
        seen_from=day("from"),
        seen_to=day("to"),
        min_sightings=_int(q.get("min")),
        max_sightings=_int(q.get("max")),
    )
    offset = max(0, _int(q.get("offset"), 0))
    with app.connection() as conn, conn.cursor() as cur:
        total, rows = pages.list_page(cur, filters, offset=offset)
        locations = pages.locations(cur)
    return app.page(
        request,
        "list.html",
        {
            "rows": rows,
            "total": total,
            "offset": offset,
            "filters": filters,
            "query": {k: v for k, v in q.items() if k != "offset"},
            "locations": locations,
            "sexes": SEXES,
        },
    )


def crop(request: Request) -> Response:
    """``GET /crops/{detection_id}.jpg``: the detection's crop (404 for an unknown id)."""
    app: ReviewApp = request.app.state.review
    with app.connection() as conn, conn.cursor() as cur:
        path = app.crops.path(cur, request.path_params["detection_id"])
    if path is None:
        return Response("no such detection", status_code=404, media_type="text/plain")
    return FileResponse(
        path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return {}
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    fields = parse_qs(body.decode("utf-8", "replace"))
    return {k: ",".join(v) if k == "detections" else v[-1] for k, v in fields.items()}


def _decision(form: dict[str, str]) -> Decision:
    detections = tuple(
        int(x) for x in form.get("detections", "").replace(",", " ").split() if x.isdigit()
    )
    into = form.get("into", "new")
    return Decision(
        answer=form.get("answer", ""),
        left=_int(form.get("left")),
        right=_int(form.get("right")) if form.get("answer") != "split" else _int(into),
        detection=_int(form.get("detection")),
        class_name=form.get("class_name") or None,
        expect=form.get("token") or None,
        detections=detections,
    )


def _message(result: dict) -> str:
    action = result["action"]
    if action == "merge":
        said = f" (a {result['class']})" if result.get("class") else ""
        return f"Merged deer {result['removed']} into deer {result['deer']}{said}."
    if action == "not_same":
        return f"Deer {result['left']} and {result['right']} are not the same: remembered."
    if action == "correct":
        return f"Detection {result['detection']} is now {result['class']}."
    if action == "keep":
        shown = ", ".join(str(d) for d in result["detections"])
        return f"Detection(s) {shown} stay with deer {result['deer']}: remembered."
    if action == "not_deer":
        return f"Deer {result['deer']} is no deer: its {result['detections']} boxes are removed."
    if action == "split":
        return (
            f"Moved {result['moved']} sighting(s) from deer {result['from']} to {result['deer']}."
        )
    return f"Undid the {result['undid']} (decision {result['decision']})."


async def decisions(request: Request) -> Response:
    """``POST /decisions``: record one decision (403 without token/origin, 404, 409, 503)."""
    app: ReviewApp = request.app.state.review
    form = await _form(request)
    if not (
        app.host_allowed(request)
        and app.same_origin(request)
        and hmac.compare_digest(form.get("csrf", ""), app.csrf)
    ):
        return Response(
            "forbidden: a decision needs this page's token and origin",
            status_code=403,
            media_type="text/plain",
        )
    wants_json = "application/json" in request.headers.get("accept", "")
    back = form.get("next", "/")
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    from starlette.concurrency import run_in_threadpool

    def run():
        with app.connection() as conn:
            return decide(
                conn, app.queue, _decision(form), app.reviewer, app.match, app.lock_timeout_s
            )

    try:
        result = await run_in_threadpool(run)
    except ReviewError as exc:
        status = (
            404
            if isinstance(exc, UnknownObject)
            else 409
            if isinstance(exc, DecisionConflict)
            else 503
            if isinstance(exc, IdentityBusy)
            else 400
        )
        if wants_json:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=status)
        return app.page(request, "refused.html", {"error": str(exc), "back": back}, status=status)
    message = _message(result)
    if wants_json:
        return JSONResponse({"ok": True, "message": message, "result": result})
    if result["action"] == "split" and back.startswith("/deer/"):
        back = f"/deer/{result['from']}"
    sep = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{sep}{urlencode({'msg': message})}", status_code=303)


def create_app(review: ReviewApp) -> Starlette:
    """Build the Starlette application around a ``ReviewApp``."""
    hosts = sorted(review.hosts)
    app = Starlette(
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
        routes=[
            Route("/", queue_page),
            Route("/deer", list_page),
            Route("/deer/{deer_id:int}", deer_page),
            Route("/crops/{detection_id:int}.jpg", crop),
            Route("/decisions", decisions, methods=["POST"]),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
    )
    app.state.review = review
    return app
