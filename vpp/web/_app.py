"""The HTTP API (``/api/v1``) and the operator dashboard, one FastAPI app over the store.

Served by ``vpp serve`` (no daemon needed) and by the daemon (``[daemon] http_host``,
``http_port``). Every ``/api/v1`` request carries a bearer token (``vpp token create``):
``operator`` sees and changes every park, ``owner`` only its own (403 otherwise); no or
an unknown token is 401. Request bodies are size-limited (413) and each token is
rate-limited (429). Park files are uploaded as TOML and checked by the same validator as
``vpp enroll`` (:func:`vpp.config.load_park_text`); a bad one is 422 listing every
``file: field = value: what is allowed`` and nothing is written.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlmodel import SQLModel

from vpp.config import ConfigSet, load_park_text
from vpp.errors import ConfigError, StoreError
from vpp.store import (
    ApiTokenRecord,
    BidRecord,
    CarbonIntervalRecord,
    DaemonStateRecord,
    RtBidRecord,
    SetpointRecord,
    SettlementRecord,
    Store,
    TelemetryRecord,
)
from vpp.web._dashboard import dashboard_data, dashboard_page, rt_points

log = structlog.get_logger(__name__)

STATIC = Path(__file__).resolve().parent / "static"

#: Largest request body accepted [bytes]: a park file is a few kB.
MAX_BODY_BYTES = 256 * 1024
#: Requests per token per minute.
RATE_LIMIT_PER_MINUTE = 120
#: Largest page of rows.
MAX_PAGE = 1000

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyLimit:
    """ASGI middleware: a body larger than ``limit`` bytes is refused with 413 before it is read
    whole (by its Content-Length, or as it streams in)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _too_large(send, self.limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLargeError
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLargeError:
            await _too_large(send, self.limit)


class _BodyTooLargeError(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes; send a smaller one"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass
class _RateLimiter:
    """A sliding one-minute window of request times per token id."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, collections.deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, key: str) -> float | None:
        """None if the request may go on, else the seconds to wait."""
        now = self.clock()
        with self._lock:
            times = self._seen.setdefault(key, collections.deque())
            while times and times[0] <= now - 60.0:
                times.popleft()
            if len(times) >= self.per_minute:
                return max(0.0, 60.0 - (now - times[0]))
            times.append(now)
            return None


@dataclass(frozen=True)
class Principal:
    """Who is asking: a token's id, role and (owner) park."""

    token_id: str
    role: str
    park_id: str | None

    def may(self, park_id: str) -> bool:
        return self.role == "operator" or self.park_id == park_id


def _page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    return {
        "items": items,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(items) == limit else None,
    }


def _row(record: SQLModel) -> dict[str, Any]:
    return json.loads(record.model_dump_json())


def rt_bid_item(record: RtBidRecord) -> dict[str, Any]:
    """A stored real-time bid as the API shows it: its row without the flexibility curve, with
    its points as ``{"price_per_mwh", "quantity_mw"}`` (None if the stored points do not parse)."""
    item = _row(record)
    item.pop("curve_json", None)
    item.pop("points_json", None)
    item["points"] = rt_points(record)
    return item


def principal(request: Request) -> Principal:
    """The token's holder, or 401 (no or unknown token) / 429 (over the rate limit)."""
    store: Store = request.app.state.store
    limiter: _RateLimiter = request.app.state.limiter
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "no bearer token; send Authorization: Bearer <token> (vpp token create)",
                            headers={"WWW-Authenticate": "Bearer"})
    record: ApiTokenRecord | None = store.check_token(token.strip())
    if record is None:
        log.info("api_token_refused", path=request.url.path)  # never the token itself
        # Guessing tokens is rate-limited too, per client address.
        client = request.client.host if request.client is not None else "unknown"
        if limiter.allow(f"refused:{client}") is not None:
            raise HTTPException(429, "too many refused tokens from this address; retry later",
                                headers={"Retry-After": "60"})
        raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    wait = limiter.allow(record.id)
    if wait is not None:
        log.warning("api_rate_limited", credential_id=record.id)
        raise HTTPException(429, f"more than {limiter.per_minute} requests a minute from this token; retry later",
                            headers={"Retry-After": str(int(wait) + 1)})
    return Principal(record.id, record.role, record.park_id)


Who = Annotated[Principal, Depends(principal)]
Start = Annotated[dt.datetime | None, Query(description="From this time (ISO 8601 with offset), inclusive")]
End = Annotated[dt.datetime | None, Query(description="Until this time, exclusive")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0)]
Product = Annotated[str | None, Query(description="Only this real-time product (its id in the market file)")]


def create_app(
    store: Store,
    config: ConfigSet | None = None,
    *,
    backtest_dirs: list[Path] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    rate_limit_per_minute: int = RATE_LIMIT_PER_MINUTE,
    poll_s: float = 5.0,
) -> FastAPI:
    """The API and dashboard over ``store``; ``config`` gives the markets park uploads are
    checked against and the folder their relative paths resolve from."""
    app = FastAPI(
        title="vpp API",
        version="1",
        description="Parks, day-ahead and real-time bids and awards, telemetry, setpoints and settlement of a vpp store.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.store = store
    app.state.limiter = _RateLimiter(rate_limit_per_minute)
    backtests = [Path(p) for p in backtest_dirs or []]

    def aware(value: dt.datetime | None, name: str) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"{name} = {value.isoformat()}: give a UTC offset (2025-05-10T00:00:00Z)")
        return value

    def park_or_404(park_id: str, who: Principal) -> None:
        if not who.may(park_id):
            raise HTTPException(403, f"token may not see park {park_id!r}")
        if park_id not in {p.id for p in store.parks()}:
            raise HTTPException(404, f"park {park_id!r} is not enrolled")

    def operator_only(who: Principal) -> None:
        if who.role != "operator":
            raise HTTPException(403, "bids and awards are the portfolio's: operator tokens only")

    @app.get("/api/v1/parks", tags=["parks"])
    def list_parks(who: Who) -> list[dict[str, Any]]:
        """The parks this token may see: id, name, market."""
        return [
            {"id": p.id, "name": p.name, "market": p.market, "timezone": p.timezone}
            for p in store.parks()
            if who.may(p.id)
        ]

    @app.get("/api/v1/parks/{park_id}", tags=["parks"])
    def get_park(park_id: str, who: Who) -> dict[str, Any]:
        """One park's stored configuration."""
        park_or_404(park_id, who)
        return json.loads(store.park_config(park_id).model_dump_json())

    async def write_park(request: Request, who: Principal, park_id: str | None, create_only: bool) -> Response:
        if config is None:
            raise HTTPException(503, "this server has no config folder; start it with --config to accept park files")
        if park_id is not None and not who.may(park_id):
            raise HTTPException(403, f"token may not change park {park_id!r}")
        name = f"{config.settings.paths.parks}/{park_id or 'upload'}.toml"
        try:
            text = (await request.body()).decode("utf-8")
        except UnicodeDecodeError:
            return JSONResponse({"detail": [f"{name}: not UTF-8 text; send the park file as UTF-8"]}, status_code=422)
        try:
            park = load_park_text(text, name, config.root / config.settings.paths.parks,
                                  config.markets, config.market_files)
        except ConfigError as exc:
            log.info("api_park_refused", credential_id=who.token_id, issues=len(exc.issues))
            return JSONResponse({"detail": [str(i) for i in exc.issues]}, status_code=422)
        if park_id is not None and park.id != park_id:
            return JSONResponse({"detail": [f"{name}: id = {park.id!r}: must be {park_id!r}, the park of the URL"]},
                                status_code=422)
        if not who.may(park.id):
            raise HTTPException(403, f"token may not change park {park.id!r}")
        exists = park.id in {p.id for p in store.parks()}
        if create_only and exists:
            raise HTTPException(409, f"park {park.id!r} is enrolled; PUT /api/v1/parks/{park.id} replaces it")
        try:
            store.enroll([(park, Path(f"api:{name}"))])
        except StoreError as exc:
            raise HTTPException(503, str(exc)) from exc
        log.info("api_park_written", credential_id=who.token_id, park=park.id, created=not exists)
        return JSONResponse({"id": park.id, "name": park.name, "market": park.market,
                             "assets": len(park.assets)}, status_code=200 if exists else 201)

    park_body = {"requestBody": {"required": True, "content": {"application/toml": {"schema": {"type": "string"}}}}}

    @app.put("/api/v1/parks/{park_id}", tags=["parks"], openapi_extra=park_body,
             responses={201: {"description": "created"}, 422: {"description": "invalid park file"}})
    async def put_park(park_id: str, request: Request, who: Who) -> Response:
        """Create or replace a park from its park file (TOML), validated like ``vpp enroll``."""
        return await write_park(request, who, park_id, create_only=False)

    @app.post("/api/v1/parks", tags=["parks"], openapi_extra=park_body, status_code=201,
              responses={409: {"description": "already enrolled"}, 422: {"description": "invalid park file"}})
    async def post_park(request: Request, who: Who) -> Response:
        """Enrol a new park from its park file (TOML)."""
        return await write_park(request, who, None, create_only=True)

    @app.get("/api/v1/parks/{park_id}/assets", tags=["parks"])
    def get_assets(park_id: str, who: Who) -> list[dict[str, Any]]:
        park_or_404(park_id, who)
        return [{"id": a.id, "type": a.type, "adapter": a.adapter_type, "spec": json.loads(a.spec_json)}
                for a in store.assets(park_id)]

    def park_rows(table: type[SQLModel], column: str, park_id: str, who: Principal,
                  start: Any, end: Any, limit: int, offset: int) -> dict[str, Any]:
        park_or_404(park_id, who)
        rows = store.rows(table, time_column=column, park_ids=[park_id], start=start, end=end,
                          limit=limit, offset=offset)
        return _page([_row(r) for r in rows], limit, offset)

    @app.get("/api/v1/parks/{park_id}/telemetry", tags=["time series"])
    def get_telemetry(park_id: str, who: Who, start: Start = None, end: End = None,
                      limit: Limit = 500, offset: Offset = 0) -> dict[str, Any]:
        """Measured power [kW], SoC and availability per asset, by time."""
        return park_rows(TelemetryRecord, "measured_at", park_id, who, aware(start, "start"),
                         aware(end, "end"), limit, offset)

    @app.get("/api/v1/parks/{park_id}/setpoints", tags=["time series"])
    def get_setpoints(park_id: str, who: Who, start: Start = None, end: End = None,
                      limit: Limit = 500, offset: Offset = 0) -> dict[str, Any]:
        """Setpoints [kW] sent per asset and interval."""
        return park_rows(SetpointRecord, "interval_start", park_id, who, aware(start, "start"),
                         aware(end, "end"), limit, offset)

    @app.get("/api/v1/parks/{park_id}/settlement", tags=["settlement"])
    def get_settlement(park_id: str, who: Who,
                       first: Annotated[dt.date | None, Query(description="First delivery day")] = None,
                       last: Annotated[dt.date | None, Query(description="Last delivery day, inclusive")] = None,
                       limit: Limit = 500, offset: Offset = 0) -> dict[str, Any]:
        """Revenue per delivery day [market currency]."""
        end = last + dt.timedelta(days=1) if last is not None else None
        return park_rows(SettlementRecord, "delivery_day", park_id, who, first, end, limit, offset)

    @app.get("/api/v1/parks/{park_id}/carbon", tags=["settlement"])
    def get_carbon(park_id: str, who: Who, start: Start = None, end: End = None,
                   limit: Limit = 500, offset: Offset = 0) -> dict[str, Any]:
        """Metered grid flows [MWh] and grid factors [tCO2/MWh] per interval."""
        return park_rows(CarbonIntervalRecord, "interval_start", park_id, who, aware(start, "start"),
                         aware(end, "end"), limit, offset)

    @app.get("/api/v1/bids", tags=["market"])
    def get_bids(who: Who,
                 first: Annotated[dt.date | None, Query(description="First delivery day")] = None,
                 last: Annotated[dt.date | None, Query(description="Last delivery day, inclusive")] = None,
                 limit: Limit = 500, offset: Offset = 0) -> dict[str, Any]:
        """Submitted bids with their curves (operator tokens)."""
        operator_only(who)
        end = last + dt.timedelta(days=1) if last is not None else None
        rows = store.rows(BidRecord, time_column="delivery_day", start=first, end=end, limit=limit, offset=offset)
        items = [{**_row(r), "curves": json.loads(r.curves_json)} for r in rows]
        for item in items:
            item.pop("curves_json", None)
        return _page(items, limit, offset)

    @app.get("/api/v1/awards", tags=["market"])
    def get_awards(who: Who, start: Start = None, end: End = None,
                   limit: Limit = 500, offset: Offset = 0) -> dict[str, Any]:
        """Awarded quantity [MW, > 0 sold] and price [currency/MWh] per interval (operator tokens)."""
        operator_only(who)
        pairs = store.bid_awards(start=aware(start, "start"), end=aware(end, "end"), limit=limit, offset=offset)
        items = [{**_row(a), "market_id": b.market_id, "kind": b.kind} for a, b in pairs]
        return _page(items, limit, offset)

    @app.get("/api/v1/real-time/bids", tags=["market"])
    def get_rt_bids(who: Who, start: Start = None, end: End = None, product: Product = None,
                    limit: Limit = 500, offset: Offset = 0) -> dict[str, Any]:
        """Real-time bids by delivery period (``start <= period_start < end``), each with its
        points as price [currency/MWh] and quantity [MW, > 0 sold] (operator tokens)."""
        operator_only(who)
        rows = store.rt_bids(start=aware(start, "start"), end=aware(end, "end"), product_id=product,
                             limit=limit, offset=offset)
        return _page([rt_bid_item(r) for r in rows], limit, offset)

    @app.get("/api/v1/real-time/awards", tags=["market"])
    def get_rt_awards(who: Who, start: Start = None, end: End = None, product: Product = None,
                      limit: Limit = 500, offset: Offset = 0) -> dict[str, Any]:
        """Real-time awards per settlement interval: quantity [MW, > 0 sold] and price
        [currency/MWh], null until the market published it (operator tokens)."""
        operator_only(who)
        pairs = store.rt_bid_awards(start=aware(start, "start"), end=aware(end, "end"), product_id=product,
                                    limit=limit, offset=offset)
        items = [{**_row(a), "market_id": b.market_id, "portfolio_id": b.portfolio_id,
                  "product_id": b.product_id, "period_start": _row(b)["period_start"], "direction": b.direction}
                 for a, b in pairs]
        return _page(items, limit, offset)

    # ----------------------------------------------------------------------- dashboard

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def daemon_state() -> DaemonStateRecord | None:
        with store.session() as session:
            return session.get(DaemonStateRecord, "daemon")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(dashboard_page(poll_s))

    @app.get("/dashboard/data.json", include_in_schema=False)
    def dashboard_json() -> dict[str, Any]:
        return dashboard_data(store, daemon_state(), _backtest_runs(backtests))

    @app.get("/backtests/{index}/{name:path}", include_in_schema=False)
    def backtest_file(index: int, name: str) -> FileResponse:
        runs = _backtest_runs(backtests)
        if not 0 <= index < len(runs):
            raise HTTPException(404, "no such backtest folder")
        folder = Path(runs[index]["path"]).resolve()
        target = (folder / (name or "report.html")).resolve()
        if not target.is_relative_to(folder) or not target.is_file():
            raise HTTPException(404, "no such file in the backtest folder")
        return FileResponse(target)

    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    return app


def _backtest_runs(roots: list[Path]) -> list[dict[str, Any]]:
    """Folders under ``roots`` (or the roots themselves) that hold a backtest ``report.html``."""
    runs: list[dict[str, Any]] = []
    for root in roots:
        if not root.is_dir():
            continue
        candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
        for folder in candidates:
            if (folder / "report.html").is_file():
                summary: dict[str, Any] = {}
                if (folder / "summary.json").is_file():
                    try:
                        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
                    except (OSError, ValueError):
                        summary = {}
                runs.append({"path": str(folder), "name": folder.name, "summary_keys": sorted(summary)[:8]})
    return runs

