"""The HTTP API (vpp.web) against the real app, served by uvicorn on loopback, read with httpx.

The store runs on SQLite and on PostgreSQL (``store_url``; ids ``[postgres]`` need a server).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate
from sqlmodel import select
from structlog.testing import capture_logs
from typer.testing import CliRunner

from vpp.cli import app as cli
from vpp.config import load_config
from vpp.runtime.recording import StoreRecorder
from vpp.store import ApiTokenRecord, RtBidRecord, SetpointRecord, Store, TelemetryRecord
from vpp.types import BidPoint, RealTimeAward, RealTimeBid
from vpp.web import create_app, serve_in_thread

UTC = dt.UTC


@pytest.fixture
def store(config_copy: Path, store_url: str) -> Iterator[Store]:
    cfg = load_config(config_copy)
    store = Store(store_url)
    store.enroll([(cfg.parks[p], cfg.park_files[p]) for p in sorted(cfg.parks)])
    yield store
    store.close()


@pytest.fixture
def api(store: Store, config_copy: Path) -> Iterator[httpx.Client]:
    app = create_app(store, load_config(config_copy), max_body_bytes=64 * 1024, rate_limit_per_minute=1000)
    server = serve_in_thread(app, "127.0.0.1", 0)
    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(10.0)) as client:
        yield client
    server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_token_is_401_and_a_wrong_one_too(api: httpx.Client) -> None:
    assert api.get("/api/v1/parks").status_code == 401
    assert api.get("/api/v1/parks", headers=bearer("vpp_nope_nope")).status_code == 401
    refused = api.put("/api/v1/parks/jinan-north", content="id = 'x'")
    assert refused.status_code == 401, "a state-changing request without a token"


def test_operator_gets_every_park(api: httpx.Client, store: Store) -> None:
    token = store.create_token("operator")
    answer = api.get("/api/v1/parks", headers=bearer(token))
    assert answer.status_code == 200
    parks = {p["id"]: p for p in answer.json()}
    assert set(parks) == {r.id for r in store.parks()}
    assert len(parks) >= 3
    assert parks["jinan-north"] == {
        "id": "jinan-north", "name": "Jinan North Industrial Park", "market": "cn-province-a",
        "timezone": "Asia/Shanghai",
    }


def test_owner_sees_and_changes_only_its_park(api: httpx.Client, store: Store, config_copy: Path) -> None:
    token = store.create_token("owner", "jinan-north")
    assert [p["id"] for p in api.get("/api/v1/parks", headers=bearer(token)).json()] == ["jinan-north"]
    assert api.get("/api/v1/parks/jinan-north", headers=bearer(token)).status_code == 200
    other = api.get("/api/v1/parks/qingdao-logistics", headers=bearer(token))
    assert other.status_code == 403
    assert api.get("/api/v1/parks/qingdao-logistics/telemetry", headers=bearer(token)).status_code == 403
    body = (config_copy / "parks" / "qingdao-logistics.toml").read_text(encoding="utf-8")
    assert api.put("/api/v1/parks/qingdao-logistics", content=body, headers=bearer(token)).status_code == 403
    assert api.get("/api/v1/bids", headers=bearer(token)).status_code == 403


def test_a_bad_park_file_is_422_naming_file_and_field_and_nothing_is_written(
    api: httpx.Client, store: Store, config_copy: Path
) -> None:
    token = store.create_token("owner", "jinan-north")
    before = store.park_config("jinan-north").model_dump_json()
    before_assets = [(a.id, a.spec_json) for a in store.assets("jinan-north")]
    text = (config_copy / "parks" / "jinan-north.toml").read_text(encoding="utf-8")
    broken = text.replace("energy_kwh = 4000", "energy_kwh = -5", 1)
    assert broken != text
    answer = api.put("/api/v1/parks/jinan-north", content=broken, headers=bearer(token))
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert any(
        line.startswith("parks/jinan-north.toml: assets[0].energy_kwh = -5:") for line in detail
    ), detail
    assert store.park_config("jinan-north").model_dump_json() == before
    assert [(a.id, a.spec_json) for a in store.assets("jinan-north")] == before_assets
    latin = api.put("/api/v1/parks/jinan-north", content="name = 'J\xfcnan'".encode("latin-1"), headers=bearer(token))
    assert latin.status_code == 422
    assert latin.json()["detail"] == ["parks/jinan-north.toml: not UTF-8 text; send the park file as UTF-8"]
    invalid = api.put("/api/v1/parks/jinan-north", content="id = [", headers=bearer(token))
    assert invalid.status_code == 422
    assert "invalid TOML" in invalid.json()["detail"][0]


def test_an_owner_replaces_its_park_and_the_validator_is_enrolls(
    api: httpx.Client, store: Store, config_copy: Path
) -> None:
    token = store.create_token("owner", "jinan-north")
    text = (config_copy / "parks" / "jinan-north.toml").read_text(encoding="utf-8")
    renamed = text.replace('name = "Jinan North Industrial Park"', 'name = "Jinan North"', 1)
    answer = api.put("/api/v1/parks/jinan-north", content=renamed, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert store.park_config("jinan-north").name == "Jinan North"
    wrong_market = text.replace('market = "cn-province-a"', 'market = "nowhere"', 1)
    refused = api.put("/api/v1/parks/jinan-north", content=wrong_market, headers=bearer(token))
    assert refused.status_code == 422
    assert refused.json()["detail"][0].startswith("parks/jinan-north.toml: market = 'nowhere': unknown market")
    moved = api.put("/api/v1/parks/jinan-north", content=text.replace('id = "jinan-north"', 'id = "jinan-x"'),
                    headers=bearer(token))
    assert moved.status_code == 422
    assert "id = 'jinan-x'" in moved.json()["detail"][0]


def test_operator_creates_a_park_with_post(api: httpx.Client, store: Store, config_copy: Path) -> None:
    token = store.create_token("operator")
    text = (config_copy / "parks" / "jinan-north.toml").read_text(encoding="utf-8")
    again = api.post("/api/v1/parks", content=text, headers=bearer(token))
    assert again.status_code == 409
    new = text.replace('id = "jinan-north"', 'id = "jinan-south"', 1)
    created = api.post("/api/v1/parks", content=new, headers=bearer(token))
    assert created.status_code == 201, created.text
    assert "jinan-south" in {p.id for p in store.parks()}


def test_a_body_too_large_is_413(api: httpx.Client, store: Store) -> None:
    token = store.create_token("operator")
    answer = api.put("/api/v1/parks/jinan-north", content="#" * (65 * 1024), headers=bearer(token))
    assert answer.status_code == 413
    assert "jinan-north" in {p.id for p in store.parks()}


def test_a_token_over_its_rate_is_429(store: Store, config_copy: Path) -> None:
    app = create_app(store, load_config(config_copy), rate_limit_per_minute=3)
    server = serve_in_thread(app, "127.0.0.1", 0)
    try:
        busy, calm = store.create_token("operator"), store.create_token("operator")
        with httpx.Client(base_url=server.url, timeout=httpx.Timeout(10.0)) as client:
            codes = [client.get("/api/v1/parks", headers=bearer(busy)).status_code for _ in range(5)]
            assert codes == [200, 200, 200, 429, 429]
            limited = client.get("/api/v1/parks", headers=bearer(busy))
            assert int(limited.headers["retry-after"]) >= 1
            assert client.get("/api/v1/parks", headers=bearer(calm)).status_code == 200
            guesses = [client.get("/api/v1/parks", headers=bearer(f"vpp_x_{i}")).status_code for i in range(5)]
            assert guesses == [401, 401, 401, 429, 429]
    finally:
        server.stop()


def test_time_series_have_ranges_and_pages(api: httpx.Client, store: Store) -> None:
    start = dt.datetime(2025, 5, 10, tzinfo=UTC)
    with store.session() as session:
        for i in range(10):
            at = start + dt.timedelta(minutes=15 * i)
            session.add(TelemetryRecord(park_id="jinan-north", asset_id="bess-1", measured_at=at,
                                        power_kw=100.0 * i, soc=0.5, available=True))
            session.add(SetpointRecord(park_id="jinan-north", asset_id="bess-1", interval_start=at,
                                       power_kw=10.0 * i, sent_at=at))
    token = store.create_token("owner", "jinan-north")
    first = api.get("/api/v1/parks/jinan-north/telemetry", headers=bearer(token),
                    params={"start": "2025-05-10T00:30:00Z", "end": "2025-05-10T02:00:00Z", "limit": 3})
    assert first.status_code == 200
    page = first.json()
    assert [r["power_kw"] for r in page["items"]] == [200.0, 300.0, 400.0]
    assert page["next_offset"] == 3
    rest = api.get("/api/v1/parks/jinan-north/telemetry", headers=bearer(token),
                   params={"start": "2025-05-10T00:30:00Z", "end": "2025-05-10T02:00:00Z", "limit": 3,
                           "offset": 3}).json()
    assert [r["power_kw"] for r in rest["items"]] == [500.0, 600.0, 700.0]
    setpoints = api.get("/api/v1/parks/jinan-north/setpoints", headers=bearer(token)).json()
    assert len(setpoints["items"]) == 10
    assert setpoints["next_offset"] is None
    naive = api.get("/api/v1/parks/jinan-north/telemetry", headers=bearer(token),
                    params={"start": "2025-05-10T00:30:00"})
    assert naive.status_code == 422
    for path in ("assets", "settlement", "carbon"):
        assert api.get(f"/api/v1/parks/jinan-north/{path}", headers=bearer(token)).status_code == 200
    operator = store.create_token("operator")
    for path in ("/api/v1/bids", "/api/v1/awards"):
        assert api.get(path, headers=bearer(operator)).json()["items"] == []
    assert api.get("/api/v1/parks/nowhere/telemetry", headers=bearer(operator)).status_code == 404


def test_openapi_schema_is_served_and_valid(api: httpx.Client) -> None:
    schema = api.get("/api/v1/openapi.json").json()
    validate(schema)
    assert {"/api/v1/parks", "/api/v1/parks/{park_id}", "/api/v1/parks/{park_id}/telemetry",
            "/api/v1/bids", "/api/v1/awards", "/api/v1/real-time/bids", "/api/v1/real-time/awards"} <= set(schema["paths"])
    rt = schema["paths"]["/api/v1/real-time/bids"]["get"]
    assert {p["name"] for p in rt["parameters"]} == {"start", "end", "product", "limit", "offset"}


def test_token_create_prints_once_stores_a_hash_and_never_logs_it(config_copy: Path, store_url: str) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["enroll", "--config", str(config_copy)]).exit_code == 0
    with capture_logs() as logs:
        result = runner.invoke(cli, ["token", "create", "--role", "owner", "--park", "jinan-north",
                                     "--config", str(config_copy)])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("vpp_")
    assert token not in repr(logs)
    store = Store(store_url)
    with store.session() as session:
        rows = list(session.exec(select(ApiTokenRecord)))
    assert len(rows) == 1
    assert rows[0].role == "owner"
    assert rows[0].park_id == "jinan-north"
    assert token not in rows[0].token_sha256
    assert rows[0].id in token
    assert store.check_token(token) is not None
    store.close()
    bad = runner.invoke(cli, ["token", "create", "--role", "owner", "--config", str(config_copy)])
    assert bad.exit_code == 1
    assert "needs --park" in bad.output
    unknown = runner.invoke(cli, ["token", "create", "--role", "owner", "--park", "nope",
                                  "--config", str(config_copy)])
    assert unknown.exit_code == 1
    assert "not enrolled" in unknown.output


def test_vpp_serve_answers_over_the_store_and_a_taken_port_is_one_line(
    config_copy: Path, store_url: str, tmp_path: Path
) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    from vpp.web import bind

    runner = CliRunner()
    assert runner.invoke(cli, ["enroll", "--config", str(config_copy)]).exit_code == 0
    token = runner.invoke(cli, ["token", "create", "--role", "operator", "--config", str(config_copy)])
    secret = token.stdout.strip().splitlines()[-1]
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        busy = runner.invoke(cli, ["serve", "--config", str(config_copy), "--port", str(port)])
        assert busy.exit_code == 1
        assert f"web server 127.0.0.1:{port}" in busy.output
    finally:
        taken.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-c", "from vpp.cli import main; main()", "serve", "--config", str(config_copy),
         "--port", str(port)],
        env={**os.environ, "VPP_DATABASE_URL": store_url}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/parks", headers=bearer(secret), timeout=2.0)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "vpp serve did not start"
                assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
                time.sleep(0.2)
        assert answer.status_code == 200
        assert "jinan-north" in {p["id"] for p in answer.json()}
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert secret not in stderr


def test_a_dashboard_bound_beyond_loopback_is_a_config_warning(tmp_path: Path) -> None:
    from tests.vpp.daemon_support import load, make_config
    from vpp.config._warnings import config_warnings  # as tests/vpp/test_config_warnings.py does

    cfg = load(make_config(tmp_path, daemon={"http_host": "0.0.0.0"}))
    warnings = [w for w in config_warnings(cfg) if w.field == "daemon.http_host"]
    assert [w.value for w in warnings] == ["0.0.0.0"]


def test_a_revoked_token_is_refused(api: httpx.Client, store: Store, config_copy: Path) -> None:
    token = store.create_token("operator")
    assert api.get("/api/v1/parks", headers=bearer(token)).status_code == 200
    token_id = token.split("_")[1]
    runner = CliRunner()
    listed = runner.invoke(cli, ["token", "list", "--config", str(config_copy)])
    assert listed.exit_code == 0
    assert token_id in listed.stdout
    assert token not in listed.stdout
    assert runner.invoke(cli, ["token", "revoke", token_id, "--config", str(config_copy)]).exit_code == 0
    assert api.get("/api/v1/parks", headers=bearer(token)).status_code == 401
    unknown = runner.invoke(cli, ["token", "revoke", "nope", "--config", str(config_copy)])
    assert unknown.exit_code == 1


# ----------------------------------------------------------------------- real-time bids and awards

#: ERCOT operating hours 10:00, 11:00 and 12:00 CDT on 2025-05-10 (15:00, 16:00, 17:00 UTC).
RT_HOUR = dt.datetime(2025, 5, 10, 15, tzinfo=UTC)
RT_POINTS = (BidPoint(-20.0, -1.0), BidPoint(30.0, 0.5), BidPoint(80.0, 2.0))


def _rt_bid(market: str, product: str, start: dt.datetime) -> RealTimeBid:
    return RealTimeBid(market_id=market, portfolio_id="vpp", product_id=product, period_start=start,
                       points=RT_POINTS, direction="both", created_at=start - dt.timedelta(hours=2))


def _fill_real_time(store: Store) -> list[RealTimeBid]:
    """Four real-time bids and one bid's four quarter-hour awards, written as the daemon writes
    them (StoreRecorder: ``submitted`` first, then the exchange's answer, then the awards)."""
    recorder = StoreRecorder(store)
    bids = [_rt_bid("ercot-houston", "rt-energy", RT_HOUR + dt.timedelta(hours=h)) for h in range(3)]
    bids.insert(1, _rt_bid("epex-de-lu", "ida1", RT_HOUR))
    for i, bid in enumerate(bids):
        recorder.record_rt_bid(bid, status="submitted", receipt=None, reason=None)
        rejected = i == 3
        recorder.record_rt_bid(bid, status="rejected" if rejected else "accepted",
                               receipt=None if rejected else f"r-{i}", reason="gate closed" if rejected else None)
    # The 10:00 hour cleared at 31.5, 42, 85 and (not yet published) ...: the step curve gives
    # 0.5 MW at 31.5 and 42 (>= 30, < 80) and 2 MW at 85 (>= 80); the last price is still out.
    recorder.record_rt_awards(bids[0].idempotency_key, [
        RealTimeAward("rt-energy", "both", RT_HOUR + dt.timedelta(minutes=15 * q), mw, price)
        for q, (mw, price) in enumerate([(0.5, 31.5), (0.5, 42.0), (2.0, 85.0), (2.0, None)])
    ])
    return bids


def _at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def test_real_time_bids_and_awards_need_an_operator_token(api: httpx.Client, store: Store) -> None:
    _fill_real_time(store)
    for path in ("/api/v1/real-time/bids", "/api/v1/real-time/awards"):
        assert api.get(path).status_code == 401
        assert api.get(path, headers=bearer("vpp_nope_nope")).status_code == 401
        # The bids are the portfolio's (every park of the market), like the day-ahead bids:
        # an owner token is refused, also for its own park's market.
        owner = store.create_token("owner", "houston-ship-channel")
        refused = api.get(path, headers=bearer(owner))
        assert refused.status_code == 403
        assert "operator tokens only" in refused.json()["detail"]
        assert api.get(path, headers=bearer(store.create_token("operator"))).status_code == 200


def test_real_time_bids_by_period_product_and_page(api: httpx.Client, store: Store) -> None:
    bids = _fill_real_time(store)
    operator = bearer(store.create_token("operator"))
    window = {"start": "2025-05-10T15:00:00Z", "end": "2025-05-10T17:00:00Z"}
    answer = api.get("/api/v1/real-time/bids", headers=operator, params=window)
    assert answer.status_code == 200
    items = answer.json()["items"]
    # 15:00 (ercot, then epex: by period, then as written) and 16:00; 17:00 is the exclusive end
    assert [(i["market_id"], i["product_id"], _at(i["period_start"])) for i in items] == [
        ("ercot-houston", "rt-energy", RT_HOUR), ("epex-de-lu", "ida1", RT_HOUR),
        ("ercot-houston", "rt-energy", RT_HOUR + dt.timedelta(hours=1)),
    ]
    first = items[0]
    assert first["idempotency_key"] == bids[0].idempotency_key
    assert first["points"] == [{"price_per_mwh": -20.0, "quantity_mw": -1.0},
                               {"price_per_mwh": 30.0, "quantity_mw": 0.5},
                               {"price_per_mwh": 80.0, "quantity_mw": 2.0}]
    assert (first["status"], first["receipt"], first["direction"]) == ("accepted", "r-0", "both")
    assert "curve_json" not in first
    assert "points_json" not in first
    assert [i["status"] for i in api.get("/api/v1/real-time/bids", headers=operator).json()["items"]] == [
        "accepted", "accepted", "accepted", "rejected"]
    ida = api.get("/api/v1/real-time/bids", headers=operator, params={**window, "product": "ida1"}).json()
    assert [i["market_id"] for i in ida["items"]] == ["epex-de-lu"]
    assert api.get("/api/v1/real-time/bids", headers=operator, params={"product": "nope"}).json()["items"] == []
    page = api.get("/api/v1/real-time/bids", headers=operator, params={"limit": 2}).json()
    assert [_at(i["period_start"]) for i in page["items"]] == [RT_HOUR, RT_HOUR]
    assert page["next_offset"] == 2
    rest = api.get("/api/v1/real-time/bids", headers=operator, params={"limit": 2, "offset": 2}).json()
    assert [_at(i["period_start"]) for i in rest["items"]] == [RT_HOUR + dt.timedelta(hours=h) for h in (1, 2)]
    assert rest["next_offset"] == 4
    assert api.get("/api/v1/real-time/bids", headers=operator, params={"limit": 2, "offset": 4}).json() == {
        "items": [], "limit": 2, "offset": 4, "next_offset": None}
    naive = api.get("/api/v1/real-time/bids", headers=operator, params={"start": "2025-05-10T15:00:00"})
    assert naive.status_code == 422
    assert api.get("/api/v1/real-time/bids", headers=operator, params={"limit": 0}).status_code == 422


def test_real_time_awards_by_interval_with_pending_prices(api: httpx.Client, store: Store) -> None:
    bids = _fill_real_time(store)
    operator = bearer(store.create_token("operator"))
    answer = api.get("/api/v1/real-time/awards", headers=operator,
                     params={"start": "2025-05-10T15:15:00Z", "end": "2025-05-10T16:00:00Z"})
    assert answer.status_code == 200
    page = answer.json()
    assert [(_at(i["interval_start"]), i["quantity_mw"], i["price_per_mwh"]) for i in page["items"]] == [
        (RT_HOUR + dt.timedelta(minutes=15), 0.5, 42.0),
        (RT_HOUR + dt.timedelta(minutes=30), 2.0, 85.0),
        (RT_HOUR + dt.timedelta(minutes=45), 2.0, None),  # not yet published
    ]
    assert {(i["market_id"], i["product_id"], i["direction"], i["idempotency_key"]) for i in page["items"]} == {
        ("ercot-houston", "rt-energy", "both", bids[0].idempotency_key)}
    assert {_at(i["period_start"]) for i in page["items"]} == {RT_HOUR}
    assert page["next_offset"] is None
    first = api.get("/api/v1/real-time/awards", headers=operator, params={"limit": 3}).json()
    assert [i["quantity_mw"] for i in first["items"]] == [0.5, 0.5, 2.0]
    assert first["next_offset"] == 3
    assert [i["price_per_mwh"] for i in api.get("/api/v1/real-time/awards", headers=operator,
                                                 params={"limit": 3, "offset": 3}).json()["items"]] == [None]
    assert api.get("/api/v1/real-time/awards", headers=operator, params={"product": "ida1"}).json()["items"] == []


def test_a_real_time_bid_whose_stored_points_do_not_parse_is_shown_without_points(
    api: httpx.Client, store: Store
) -> None:
    bids = _fill_real_time(store)
    with store.session() as session:
        row = session.exec(select(RtBidRecord).where(RtBidRecord.idempotency_key == bids[0].idempotency_key)).one()
        row.points_json = '{"points": [[1.0]]}'  # a hand-edited row: one number where a pair belongs
        session.add(row)
    with capture_logs() as logs:
        items = api.get("/api/v1/real-time/bids", headers=bearer(store.create_token("operator"))).json()["items"]
    assert [i["points"] is None for i in items] == [True, False, False, False]
    assert [e["event"] for e in logs if e.get("key") == bids[0].idempotency_key] == ["stored_rt_bid_unreadable"]
