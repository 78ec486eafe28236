"""The dashboard in a real headless browser: Debian's chromium driven by Selenium.

The page is served by uvicorn on loopback over a store with the example parks; it must
show every park id and today's awards chart, and redraw when new rows reach the store
(as a daemon's next dispatch writes them); and, served by a real ``vpp run --simulate``,
follow that daemon's next dispatches without a reload. Screenshots land in the test's tmp folder.
Without chromium the test skips, saying why; under ``CI`` it fails (``.ci/browser-up``
installs it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from vpp.config import load_config
from vpp.runtime.recording import StoreRecorder
from vpp.store import AwardRecord, BidRecord, DaemonStateRecord, Store, TelemetryRecord, utcnow
from vpp.types import BidPoint, RealTimeAward, RealTimeBid
from vpp.web import create_app, serve_in_thread
from vpp.web._dashboard import dashboard_data

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,2000",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        why = f"{', '.join(missing)} not found: apt-get install chromium chromium-driver (.ci/browser-up)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _awards(store: Store, day: dt.date, zone: ZoneInfo, price: float) -> None:
    """A day-ahead bid for ``day`` and its 96 awards, as the daemon records them."""
    start = dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)
    with store.session() as session:
        bid = BidRecord(idempotency_key=f"da-{day}", market_id="cn-province-a", portfolio_id="vpp",
                        kind="day_ahead", delivery_day=day, submitted_at=utcnow(), status="accepted",
                        curves_json="[]")
        session.add(bid)
        session.flush()
        assert bid.id is not None
        for i in range(96):
            session.add(AwardRecord(bid_id=bid.id, interval_start=start + dt.timedelta(minutes=15 * i),
                                    quantity_mw=1.0 + (i % 8) / 4, price_per_mwh=price + i, received_at=utcnow()))


def _rt_bid(store: Store, start: dt.datetime, *, rejected: bool = False,
            awards: Sequence[tuple[float, float | None]] = ()) -> str:
    """An ERCOT real-time energy offer for the hour from ``start`` (points -20:-1, 30:0.5, 80:2)
    and its quarter-hour awards (MW, price or None if not published yet), written as the
    daemon writes them; its idempotency key."""
    recorder = StoreRecorder(store)
    bid = RealTimeBid(market_id="ercot-houston", portfolio_id="vpp", product_id="rt-energy", period_start=start,
                      points=(BidPoint(-20.0, -1.0), BidPoint(30.0, 0.5), BidPoint(80.0, 2.0)),
                      direction="both", created_at=start - dt.timedelta(hours=2))
    recorder.record_rt_bid(bid, status="submitted", receipt=None, reason=None)
    recorder.record_rt_bid(bid, status="rejected" if rejected else "accepted", receipt=None if rejected else "r-1",
                           reason="gate closed" if rejected else None)
    recorder.record_rt_awards(bid.idempotency_key, [
        RealTimeAward("rt-energy", "both", start + dt.timedelta(minutes=15 * q), mw, price)
        for q, (mw, price) in enumerate(awards)
    ])
    return bid.idempotency_key


#: What the simulated heat and hydrogen devices report besides power (Telemetry.extra), by
#: asset: hp-55 draws 400 kW at a COP of 3, eboiler-300 300 kW at 99 %, the electrolyser's
#: 1000 kW stack makes 1000 / 55 kg/h; the stores report their content and their level's demand.
EXTRAS: dict[str, dict[str, float]] = {
    "hp-55": {"heat_kwh": 10.0, "heat_kw": 1200.0},
    "eboiler-300": {"heat_kwh": 5.0, "heat_kw": 297.0, "efficiency": 0.99},
    "tank-55": {"stored_kwh": 5000.0, "demand_kw": 800.0},
    "salt-300": {"stored_kwh": 12000.0, "demand_kw": 1500.0},
    "electrolyser": {"hydrogen_kg": 3.0, "hydrogen_kg_per_h": 1000.0 / 55.0, "heat_kw": 0.0},
    "h2-store": {"stored_kg": 250.0},
}


def _telemetry(store: Store, parks: dict[str, list[str]], extras: dict[str, dict[str, float]] | None = None) -> None:
    now = utcnow()
    with store.session() as session:
        for park, assets in parks.items():
            for asset in assets:
                extra = (extras or {}).get(asset)
                session.add(TelemetryRecord(park_id=park, asset_id=asset, measured_at=now, power_kw=100.0,
                                            soc=0.5, available=True,
                                            extra_json=None if extra is None else json.dumps(extra)))


def test_heat_and_hydrogen_assets_show_their_own_quantities(config_copy: Path, tmp_path: Path) -> None:
    cfg = load_config(config_copy)
    store = Store(f"sqlite:///{tmp_path / 'dashboard.db'}")
    try:
        store.enroll([(cfg.parks[p], cfg.park_files[p]) for p in sorted(cfg.parks)])
        broken = {"tank-55": {"stored_kwh": float("nan"), "demand_kw": 800.0}}
        _telemetry(store, {p: [a.id for a in cfg.parks[p].assets] for p in cfg.parks}, {**EXTRAS, **broken})
        data = dashboard_data(store, None, [])
    finally:
        store.close()
    parks = {p["id"]: p for p in data["parks"]}
    oil = {a["id"]: a for a in parks["daqing-oilfield"]["assets"]}
    assert oil["hp-55"]["own"] == {"heat_kw": 1200.0, "heat_level": "hot_water_55c"}
    assert oil["hp-55"]["own_text"] == "heat 1200 kW to hot_water_55c"
    assert oil["eboiler-300"]["own_text"] == "heat 297 kW to steam_300c"
    assert oil["salt-300"]["own"] == {"heat_level": "steam_300c", "stored_kwh": 12000.0, "heat_demand_kw": 1500.0}
    assert oil["salt-300"]["own_text"] == "stores 12000 kWh of steam_300c, demand 1500 kW"
    assert oil["salt-300"]["soc"] == 0.5
    # A reading that is not a finite number is shown as unknown, never as a number.
    assert oil["tank-55"]["own"]["stored_kwh"] is None
    assert oil["tank-55"]["own_text"] == "stores ? kWh of hot_water_55c, demand 800 kW"
    assert oil["bess-d1"]["own"] == {}
    assert oil["bess-d1"]["own_text"] == ""
    # The park's heat: 1200 + 297 kW produced, 12000 kWh stored (tank-55's content unknown).
    heat = parks["daqing-oilfield"]["energies"]["heat"]
    assert heat["heat_kw"] == 1497.0
    assert heat["stored_kwh"] == 12000.0
    assert heat["power_kw"] == 400.0  # four heat assets at the 100 kW each reported
    houston = {a["id"]: a for a in parks["houston-ship-channel"]["assets"]}
    assert houston["electrolyser"]["own"]["hydrogen_kg_per_h"] == 18.182
    assert houston["electrolyser"]["own_text"] == "H2 18.182 kg/h"
    assert houston["h2-store"]["own_text"] == "stores 250 kg H2"
    hydrogen = parks["houston-ship-channel"]["energies"]["hydrogen"]
    assert hydrogen["hydrogen_kg_per_h"] == 18.182
    assert hydrogen["stored_kg"] == 250.0
    assert "heat" not in parks["houston-ship-channel"]["energies"]


def test_real_time_bids_show_in_market_time_with_their_awards(config_copy: Path, tmp_path: Path) -> None:
    """The daemon's clock at 2025-11-02 18:00 UTC: 12:00 CST in Houston, the day the clocks went
    back (01:00 came twice), 02:00 on 3 November in Shanghai (the first park's day: the chart's)."""
    cfg = load_config(config_copy)
    store = Store(f"sqlite:///{tmp_path / 'dashboard.db'}")
    now = dt.datetime(2025, 11, 2, 18, tzinfo=dt.UTC)
    state = DaemonStateRecord(id="daemon", mode="simulate", pid=1, started_at=now, heartbeat_at=now, clock_now=now)
    try:
        store.enroll([(cfg.parks[p], cfg.park_files[p]) for p in sorted(cfg.parks)])
        _awards(store, dt.date(2025, 11, 3), ZoneInfo("Asia/Shanghai"), price=300.0)
        utc = dt.UTC
        _rt_bid(store, dt.datetime(2025, 11, 2, 4, tzinfo=utc))  # 23:00 CDT on 1 November: yesterday
        early = _rt_bid(store, dt.datetime(2025, 11, 2, 6, tzinfo=utc), awards=[(-1.0, -25.0)])  # 01:00 CDT
        _rt_bid(store, dt.datetime(2025, 11, 2, 7, tzinfo=utc), rejected=True)  # 01:00 CST, an hour later
        noon = _rt_bid(store, dt.datetime(2025, 11, 2, 18, tzinfo=utc),
                       awards=[(0.5, 31.5), (0.5, 42.0), (2.0, 85.0), (2.0, None)])
        _rt_bid(store, dt.datetime(2025, 11, 3, 6, tzinfo=utc))  # 00:00 CST on 3 November: tomorrow
        data = dashboard_data(store, state, [])
    finally:
        store.close()
    rows = data["real_time"]
    assert [(r["period"], r["status"]) for r in rows] == [
        ("2025-11-02 01:00 CDT", "accepted"), ("2025-11-02 01:00 CST", "rejected"), ("2025-11-02 12:00 CST", "accepted")]
    assert {r["points"] for r in rows} == {"-20:-1, 30:0.5, 80:2"}
    assert {(r["market"], r["product"], r["direction"]) for r in rows} == {("ercot-houston", "rt-energy", "both")}
    assert [r["key"] for r in rows][::2] == [early, noon]
    assert rows[0]["awards"] == [{"interval": "01:00", "quantity_mw": -1.0, "price": -25.0}]
    assert rows[1]["awards"] == []
    assert rows[2]["awards"] == [
        {"interval": "12:00", "quantity_mw": 0.5, "price": 31.5}, {"interval": "12:15", "quantity_mw": 0.5, "price": 42.0},
        {"interval": "12:30", "quantity_mw": 2.0, "price": 85.0}, {"interval": "12:45", "quantity_mw": 2.0, "price": "pending"},
    ]
    assert "real-time bid ercot-houston rt-energy 2025-11-02 01:00 CST both: rejected gate closed" in data["alerts"]
    # The chart: Shanghai's 3 November (16:00 UTC on the 2nd on): the 96 day-ahead quarter-hours,
    # the noon hour's four real-time awards beside the day-ahead ones (the 06:00 UTC one is before).
    times, day_ahead, real_time, price = data["awards"]
    assert len(times) == 96
    assert data["awarded_intervals"] == 96
    assert data["rt_awarded_intervals"] == 4
    at = times.index(now.timestamp())  # 18:00 UTC: the day's 9th quarter-hour (i = 8)
    assert (day_ahead[at], price[at]) == (1.0, 308.0)
    assert real_time[at:at + 5] == [0.5, 0.5, 2.0, 2.0, None]
    assert sum(v is not None for v in real_time) == 4


def test_the_dashboard_shows_every_park_and_today_and_updates(
    browser: object, config_copy: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.wait import WebDriverWait

    assert isinstance(browser, WebDriver)
    cfg = load_config(config_copy)
    store = Store(f"sqlite:///{tmp_path / 'dashboard.db'}")
    store.enroll([(cfg.parks[p], cfg.park_files[p]) for p in sorted(cfg.parks)])
    zone = ZoneInfo(store.park_config(store.parks()[0].id).timezone)
    today = utcnow().astimezone(zone).date()
    _awards(store, today, zone, price=300.0)
    server = serve_in_thread(create_app(store, cfg, poll_s=0.5), "127.0.0.1", 0)
    try:
        assert httpx.get(server.url + "/static/uPlot.iife.min.js", timeout=5.0).status_code == 200
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 20)
        wait.until(lambda d: d.find_element(By.ID, "awards-summary").get_attribute("data-intervals") == "96")
        portfolio = browser.find_element(By.ID, "portfolio").text
        for park in cfg.parks:
            assert park in portfolio
            assert browser.find_element(By.ID, f"park-{park}")
        assert browser.find_elements(By.CSS_SELECTOR, "#awards-chart canvas"), "today's chart is drawn"
        assert "no telemetry" in browser.find_element(By.ID, "alerts").text
        # The next dispatch: tomorrow's awards and fresh telemetry reach the store.
        _awards(store, today + dt.timedelta(days=1), zone, price=320.0)
        _telemetry(store, {p: [a.id for a in cfg.parks[p].assets] for p in cfg.parks}, EXTRAS)
        wait.until(lambda d: d.find_element(By.ID, "awards-summary").get_attribute("data-intervals") == "192")
        wait.until(lambda d: "no telemetry" not in d.find_element(By.ID, "alerts").text)
        # ... and a real-time bid for this hour in Houston with its first awards.
        houston = ZoneInfo("America/Chicago")
        hour = utcnow().astimezone(houston).replace(minute=0, second=0, microsecond=0)
        key = _rt_bid(store, hour.astimezone(dt.UTC), awards=[(0.5, 31.5), (2.0, None)])
        row = f"#real-time tr[data-key='{key}']"
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, row))
        cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, row + " td")]
        assert cells == ["ercot-houston", "rt-energy", hour.strftime("%Y-%m-%d %H:%M %Z"), "both", "accepted",
                         "-20:-1, 30:0.5, 80:2",
                         f"{hour:%H:%M} 0.5 MW @ 31.5, {hour + dt.timedelta(minutes=15):%H:%M} 2 MW @ pending"]
        wait.until(lambda d: d.find_element(By.ID, "rt-summary").get_attribute("data-intervals") == "2")
        energies = {p: browser.find_element(By.CSS_SELECTOR, f"#park-{p} span.energies").text for p in cfg.parks}
        assert energies["daqing-oilfield"].startswith("heat: hp-55")
        assert "hydrogen: electrolyser, h2-store" in energies["houston-ship-channel"]
        assert energies["jinan-north"] == ""
        # Heat and hydrogen assets show their own quantities, not only their electric power.
        assert energies["daqing-oilfield"].endswith("kW electric, 1497 kW heat, 17000 kWh stored")
        assert "18.182 kg/h H2, 250 kg stored" in energies["houston-ship-channel"]
        heat_pump = browser.find_element(By.CSS_SELECTOR, "#park-daqing-oilfield tr[data-asset='hp-55'] td.own")
        assert heat_pump.text == "heat 1200 kW to hot_water_55c"
        tank = browser.find_element(By.CSS_SELECTOR, "#park-daqing-oilfield tr[data-asset='salt-300'] td.own")
        assert tank.text == "stores 12000 kWh of steam_300c, demand 1500 kW"
        shot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        server.stop()
        store.close()


def test_the_daemon_serves_the_dashboard_and_api_and_they_follow_its_dispatch(tmp_path: Path) -> None:
    """``vpp run --simulate`` serves the app ([daemon] http_port; here --http-port 0): the
    dashboard's data shows the parks at once and the day's bid once the daemon submitted it."""
    import json
    import signal
    import subprocess
    import sys
    import threading

    from market_replay.canonical import write_prices
    from tests.vpp.daemon_support import DAY, load, make_config, prices, wait_for

    config = make_config(tmp_path)
    price_file = tmp_path / "prices.csv"
    write_prices(prices(load(config)), price_file)
    url = f"sqlite:///{tmp_path / 'daemon.db'}"
    process = subprocess.Popen(
        [sys.executable, "-c", "from vpp.cli import main; main()", "run", "--simulate", "--config", str(config),
         "--prices", str(price_file), "--first-day", DAY.isoformat(), "--days", "1", "--speed", "500",
         "--metrics-port", "0", "--http-port", "0"],
        env={**os.environ, "VPP_DATABASE_URL": url}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    events: list[dict[str, object]] = []

    def pump() -> None:
        for line in process.stderr:  # type: ignore[union-attr]
            events.append(json.loads(line))  # still one JSON object per line with uvicorn in

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(e["event"] == "web_serving" for e in events), 60, "the web server to start")
        base = next(str(e["url"]) for e in events if e["event"] == "web_serving")
        with httpx.Client(base_url=base, timeout=httpx.Timeout(10.0)) as client:
            assert client.get("/api/v1/openapi.json").status_code == 200
            assert client.get("/api/v1/parks").status_code == 401
            parks = {p["id"] for p in client.get("/dashboard/data.json").json()["parks"]}
            cfg = load(config)
            assert parks == {p for p, park in cfg.parks.items() if park.market == "cn-province-a"}
            wait_for(lambda: any(e["event"] == "bid_submitted" for e in events), 60, "the daemon's bid")
            wait_for(lambda: client.get("/dashboard/data.json").json()["daemon"] is not None, 10, "its state")
            data = client.get("/dashboard/data.json").json()
            assert data["daemon"]["mode"] == "simulate"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(10)
        process.stderr.close()  # type: ignore[union-attr]
    assert "web_not_started" not in [e["event"] for e in events]


def test_the_dashboard_in_a_browser_follows_a_simulated_daemons_dispatch(browser: object, tmp_path: Path) -> None:
    """``vpp run --simulate`` (fast: one day at 5000 simulated seconds per second) serves the
    page; chromium shows every park and today's charts, then, without a reload, the counts of
    setpoints and metered quarter-hours grow as the daemon's next dispatches reach the store."""
    import json
    import signal
    import subprocess
    import sys
    import threading

    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.wait import WebDriverWait

    from market_replay.canonical import write_prices
    from tests.vpp.daemon_support import DAY, MARKET, load, make_config, prices, wait_for

    assert isinstance(browser, WebDriver)
    config = make_config(tmp_path)
    cfg = load(config)
    parks = sorted(p for p, park in cfg.parks.items() if park.market == MARKET)
    price_file = tmp_path / "prices.csv"
    write_prices(prices(cfg), price_file)
    process = subprocess.Popen(
        [sys.executable, "-c", "from vpp.cli import main; main()", "run", "--simulate", "--config", str(config),
         "--prices", str(price_file), "--first-day", DAY.isoformat(), "--days", "1", "--speed", "5000",
         "--metrics-port", "0", "--http-port", "0"],
        env={**os.environ, "VPP_DATABASE_URL": f"sqlite:///{tmp_path / 'daemon.db'}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    events: list[dict[str, object]] = []

    def pump() -> None:
        for line in process.stderr:  # type: ignore[union-attr]
            events.append(json.loads(line))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def counts(driver: WebDriver, key: str) -> list[int]:
        return [int(driver.find_element(By.ID, f"park-{p}").get_attribute(f"data-{key}") or 0) for p in parks]

    try:
        wait_for(lambda: any(e["event"] == "web_serving" for e in events), 60, "the web server to start")
        browser.get(next(str(e["url"]) for e in events if e["event"] == "web_serving") + "/")
        browser.execute_script("window.vppNotReloaded = true;")
        wait = WebDriverWait(browser, 90, poll_frequency=0.2)
        # the first dispatch of the delivery day: every park has setpoints and metered power
        wait.until(lambda d: f"(day {DAY.isoformat()}" in d.find_element(By.ID, "clock").text
                   and min(counts(d, "metered")) > 0)
        portfolio = browser.find_element(By.ID, "portfolio").text
        for park in parks:
            assert park in portfolio
            assert browser.find_elements(By.CSS_SELECTOR, f"#chart-{park} canvas"), f"{park}: today's chart"
        assert browser.find_element(By.ID, "awards-summary").get_attribute("data-intervals") == "96"
        assert browser.find_elements(By.CSS_SELECTOR, "#awards-chart canvas"), "today's awards chart is drawn"
        assert "daemon simulate" in browser.find_element(By.ID, "clock").text
        setpoints, metered = counts(browser, "setpoints"), counts(browser, "metered")
        # a later dispatch shows up on the same page (the script polls; no reload)
        wait.until(lambda d: all(a > b for a, b in zip(counts(d, "metered"), metered, strict=True))
                   and all(a >= b for a, b in zip(counts(d, "setpoints"), setpoints, strict=True)))
        assert browser.execute_script("return window.vppNotReloaded === true;")
        shot = tmp_path / "dashboard-daemon.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(10)
        process.stderr.close()  # type: ignore[union-attr]
    assert "web_not_started" not in [e["event"] for e in events]


def test_backtest_folders_are_listed_and_their_reports_served(config_copy: Path, tmp_path: Path) -> None:
    runs = tmp_path / "out"
    (runs / "week-19").mkdir(parents=True)
    (runs / "week-19" / "report.html").write_text("<html>week 19 report</html>", encoding="utf-8")
    (runs / "empty").mkdir()
    (tmp_path / "secret.txt").write_text("not served", encoding="utf-8")
    store = Store(f"sqlite:///{tmp_path / 'dashboard.db'}")
    server = serve_in_thread(create_app(store, load_config(config_copy), backtest_dirs=[runs]), "127.0.0.1", 0)
    try:
        with httpx.Client(base_url=server.url, timeout=httpx.Timeout(10.0)) as client:
            data = client.get("/dashboard/data.json").json()
            assert data["backtests"] == [{"index": 0, "name": "week-19"}]
            assert data["parks"] == []
            report = client.get("/backtests/0/report.html")
            assert report.status_code == 200
            assert "week 19 report" in report.text
            assert client.get("/backtests/0/../../secret.txt").status_code == 404
            assert client.get("/backtests/0/%2e%2e/%2e%2e/secret.txt").status_code == 404
            assert client.get("/backtests/5/report.html").status_code == 404
            page = client.get("/")
            assert page.status_code == 200
            assert "/static/uPlot.iife.min.js" in page.text
    finally:
        server.stop()
        store.close()


def test_a_simulated_daemons_real_time_bids_reach_the_dashboard_and_the_api(tmp_path: Path) -> None:
    """The daemon bidding DK1's mFRR energy product (``[daemon] real_time_bids``, real 2016
    prices, the replay exchange on loopback): while it runs, the dashboard lists its accepted
    real-time bids of the simulated day in Copenhagen time and the API serves the same rows."""
    from sqlmodel import select

    from market_replay import import_prices
    from tests.vpp.daemon_support import count_rows, wait_for
    from tests.vpp.test_daemon_rt import DAY, MARGIN, MARKET, _config, _shared
    from vpp.daemon.build import SimulationWorld, default_window, simulated_daemon
    from vpp.runtime.operator import MarketPortfolio
    from vpp.store import RtAwardRecord, RtBidRecord

    cfg = load_config(_config(tmp_path))
    prices = import_prices(_shared(), "nordpool-regulating", cfg.markets[MARKET], zone="DK1").prices
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    start, first, last = default_window(portfolio, prices, MARGIN, DAY, 1)
    world = SimulationWorld.start(portfolio, prices, speed=20_000.0, start=start, first_day=first, last_day=last)
    store = Store(f"sqlite:///{tmp_path / 'rt.db'}")
    daemon = simulated_daemon(cfg, store, world)
    try:
        daemon.start()
        wait_for(lambda: count_rows(store, RtAwardRecord) >= 2
                 and count_rows(store, RtBidRecord, RtBidRecord.status == "accepted") >= 2,
                 90, "two accepted real-time bids and two of their awards")
        copenhagen = ZoneInfo("Europe/Copenhagen")
        with store.session() as session:
            state = session.get(DaemonStateRecord, "daemon")
            # read before the dashboard: an accepted bid stays accepted, later ones may join
            accepted = {r.idempotency_key: r for r in session.exec(select(RtBidRecord))
                        if r.status == "accepted" and r.period_start.astimezone(copenhagen).date() == DAY}
        assert state is not None
        assert len(accepted) >= 2
        data = dashboard_data(store, state, [])
        server = serve_in_thread(create_app(store, cfg), "127.0.0.1", 0)
        try:
            token = store.create_token("operator")
            api = httpx.get(server.url + "/api/v1/real-time/bids", headers={"Authorization": f"Bearer {token}"},
                            params={"product": "mfrr-energy"}, timeout=10.0).json()["items"]
        finally:
            server.stop()
    finally:
        daemon.abort()
        world.close()
    store.close()
    shown = {r["key"]: r for r in data["real_time"]}
    assert set(accepted) <= set(shown)
    assert {r["market"] for r in shown.values()} == {MARKET}
    assert {r["product"] for r in shown.values()} == {"mfrr-energy"}
    for key, record in accepted.items():
        row = shown[key]
        assert row["period"] == record.period_start.astimezone(copenhagen).strftime("%Y-%m-%d %H:%M CET")
        assert row["direction"] == record.direction in ("up", "down")
        assert row["points"] != "?"
    assert any(r["awards"] for r in shown.values()), "an award of the day reached the table"
    assert {i["idempotency_key"] for i in api} >= set(accepted)
    assert all(i["points"] for i in api)
