"""The operator dashboard: one server-rendered page that polls ``/dashboard/data.json``.

The page draws its charts with uPlot (vendored in ``static/``, MIT licence beside it), so
nothing is built at install time. The data is read from the store; "today" is the
daemon's clock (a simulated daemon's simulated day) when a daemon reported one, else the
wall clock, and days are the first park's market-local days.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from vpp.config import ParkConfig
from vpp.store import (
    BidRecord,
    CarbonIntervalRecord,
    DaemonStateRecord,
    RtAwardRecord,
    RtBidRecord,
    SetpointRecord,
    SettlementRecord,
    Store,
    TelemetryRecord,
    utcnow,
)

log = structlog.get_logger(__name__)

#: Telemetry older than this is an alert [s].
STALE_TELEMETRY_S = 15 * 60.0
#: Rows read per series for the charts.
CHART_ROWS = 20_000


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _quarter(value: dt.datetime) -> float:
    """Unix seconds of the quarter-hour that holds ``value`` (the chart's x)."""
    seconds = value.timestamp()
    return seconds - seconds % 900


def rt_points(record: RtBidRecord) -> list[dict[str, float]] | None:
    """A stored real-time bid's price-quantity points from its wire form
    (:func:`vpp.wire.rt_bid_to_json`); None (logged) if they do not parse."""
    try:
        points = json.loads(record.points_json)["points"]
        return [{"price_per_mwh": float(price), "quantity_mw": float(quantity)} for price, quantity in points]
    except (ValueError, KeyError, TypeError):
        log.warning("stored_rt_bid_unreadable", key=record.idempotency_key)
        return None


def _num(value: float) -> str:
    """A number as the real-time table shows it: 120, -1.5, 0.25."""
    return f"{value:.4f}".rstrip("0").rstrip(".") if value == value else "nan"


def real_time_view(
    store: Store, market_zones: dict[str, ZoneInfo], now: dt.datetime
) -> tuple[list[dict[str, Any]], dict[float, float]]:
    """Today's real-time bids per market (periods starting in the market-local day) with their
    awards, as table rows, and the awarded real-time MW per interval start [unix s] (sum over bids)."""
    if not market_zones:
        return [], {}
    days = {m: now.astimezone(z).date() for m, z in market_zones.items()}
    bounds = {m: (dt.datetime.combine(days[m], dt.time(), z).astimezone(dt.UTC),
                  dt.datetime.combine(days[m] + dt.timedelta(days=1), dt.time(), z).astimezone(dt.UTC))
              for m, z in market_zones.items()}
    first = min(b[0] for b in bounds.values())
    last = max(b[1] for b in bounds.values())
    bids = [b for b in store.rt_bids(start=first, end=last, market_ids=list(market_zones), limit=CHART_ROWS)
            if bounds[b.market_id][0] <= b.period_start < bounds[b.market_id][1]]
    # a period's awards lie inside it: at most a day past the last period start
    by_key: dict[str, list[RtAwardRecord]] = defaultdict(list)
    for award, _bid in store.rt_bid_awards(start=first, end=last + dt.timedelta(days=1),
                                           market_ids=list(market_zones), limit=CHART_ROWS):
        by_key[award.idempotency_key].append(award)
    rows: list[dict[str, Any]] = []
    mw: dict[float, float] = defaultdict(float)
    for bid in bids:
        zone = market_zones[bid.market_id]
        awards = by_key.get(bid.idempotency_key, [])
        for award in awards:
            mw[award.interval_start.timestamp()] += award.quantity_mw
        points = rt_points(bid)
        rows.append({
            "key": bid.idempotency_key,
            "market": bid.market_id,
            "product": bid.product_id,
            "period": bid.period_start.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
            "direction": bid.direction,
            "status": bid.status,
            "reason": bid.reason,
            "points": "?" if points is None else ", ".join(
                f"{_num(p['price_per_mwh'])}:{_num(p['quantity_mw'])}" for p in points),
            "awards": [{"interval": a.interval_start.astimezone(zone).strftime("%H:%M"),
                        "quantity_mw": round(a.quantity_mw, 4),
                        "price": "pending" if a.price_per_mwh is None else round(a.price_per_mwh, 2)}
                       for a in awards],
        })
    return rows, mw


def dashboard_data(
    store: Store, state: DaemonStateRecord | None, backtests: list[dict[str, Any]]
) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready values."""
    now = state.clock_now if state is not None and state.stopped_at is None else utcnow()
    records = store.parks()
    parks: dict[str, ParkConfig] = {r.id: store.park_config(r.id) for r in records}
    zone = ZoneInfo(next(iter(parks.values())).timezone) if parks else dt.UTC
    local_today = now.astimezone(zone).date()
    day_start = dt.datetime.combine(local_today, dt.time(), zone).astimezone(dt.UTC)
    window_end = dt.datetime.combine(local_today + dt.timedelta(days=2), dt.time(), zone).astimezone(dt.UTC)
    alerts: list[str] = []

    # awards (today and tomorrow) against their prices
    awards: dict[float, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for award, _bid in store.bid_awards(start=day_start, end=window_end, limit=CHART_ROWS):
        slot = awards[award.interval_start.timestamp()]
        slot[0] += award.quantity_mw
        slot[1] += award.price_per_mwh * abs(award.quantity_mw)
        slot[2] += abs(award.quantity_mw)
    award_times = sorted(awards)
    market_zones = {p.market: ZoneInfo(p.timezone) for p in reversed(list(parks.values()))}
    rt_rows, rt_mw = real_time_view(store, market_zones, now)
    rt_in_window = {t: v for t, v in rt_mw.items() if day_start.timestamp() <= t < window_end.timestamp()}
    chart_times = sorted(set(award_times) | set(rt_in_window))
    award_chart = [
        chart_times,
        [round(awards[t][0], 4) if t in awards else None for t in chart_times],
        [round(rt_in_window[t], 4) if t in rt_in_window else None for t in chart_times],
        [round(awards[t][1] / awards[t][2], 2) if t in awards and awards[t][2] else None for t in chart_times],
    ]
    for rt in rt_rows:
        if rt["status"] == "rejected":
            alerts.append(f"real-time bid {rt['market']} {rt['product']} {rt['period']} {rt['direction']}: "
                          f"rejected {rt['reason'] or ''}".strip())
    bids = store.rows(BidRecord, time_column="delivery_day", start=local_today,
                      end=local_today + dt.timedelta(days=2), limit=200)
    for bid in bids:
        if bid.status in ("rejected", "missed"):
            alerts.append(f"bid {bid.kind} {bid.market_id} {bid.delivery_day}: {bid.status} {bid.reason or ''}".strip())

    park_views = []
    for park_id, park in parks.items():
        telemetry = store.rows(TelemetryRecord, time_column="measured_at", park_ids=[park_id],
                               start=day_start - dt.timedelta(days=1), end=window_end, limit=CHART_ROWS)
        latest: dict[str, TelemetryRecord] = {}
        measured: dict[float, dict[str, float]] = defaultdict(dict)
        soc: dict[float, list[float]] = defaultdict(list)
        for row in telemetry:
            latest[row.asset_id] = row
            if row.measured_at >= day_start:
                if row.power_kw is not None:
                    measured[_quarter(row.measured_at)][row.asset_id] = row.power_kw
                if row.soc is not None:
                    soc[_quarter(row.measured_at)].append(row.soc)
        setpoints: dict[float, dict[str, float]] = defaultdict(dict)
        for sp in store.rows(SetpointRecord, time_column="interval_start", park_ids=[park_id],
                             start=day_start, end=window_end, limit=CHART_ROWS):
            setpoints[sp.interval_start.timestamp()][sp.asset_id] = sp.power_kw
        times = sorted(set(measured) | set(setpoints))
        chart = [
            times,
            [round(sum(setpoints[t].values()), 2) if t in setpoints else None for t in times],
            [round(sum(measured[t].values()), 2) if t in measured else None for t in times],
            [round(sum(soc[t]) / len(soc[t]), 4) if soc.get(t) else None for t in times],
        ]
        assets: list[dict[str, Any]] = []
        for asset in park.assets:
            row = latest.get(asset.id)
            age = None if row is None else (now - row.measured_at).total_seconds()
            available = None if row is None else row.available
            if row is None:
                alerts.append(f"{park_id}/{asset.id}: no telemetry")
            elif not row.available:
                alerts.append(f"{park_id}/{asset.id}: unavailable {row.reason or ''}".strip())
            elif age is not None and age > STALE_TELEMETRY_S:
                alerts.append(f"{park_id}/{asset.id}: last telemetry {age / 60:.0f} min old")
            heat = bool(asset.heat_outputs()) or asset.storage_node not in (None, "hydrogen")
            hydrogen = asset.produces_hydrogen or asset.storage_node == "hydrogen"
            own = own_quantities(asset, _extra(row))
            assets.append({
                "id": asset.id, "type": asset.type, "available": available,
                "telemetry_age_s": None if age is None else round(age),
                "power_kw": None if row is None else row.power_kw,
                "soc": None if row is None else row.soc,
                "energy": "heat" if heat else "hydrogen" if hydrogen else "electricity",
                "own": own, "own_text": own_text(own),
            })
        energies: dict[str, dict[str, Any]] = {}
        for kind in ("heat", "hydrogen"):
            of_kind = [a for a in assets if a["energy"] == kind]
            if of_kind:
                energies[kind] = {
                    "assets": [a["id"] for a in of_kind],
                    "power_kw": round(sum(a["power_kw"] or 0.0 for a in of_kind), 1),
                    **_totals(kind, [a["own"] for a in assets]),
                }
        carbon = store.carbon_intervals(park_id, local_today - dt.timedelta(days=7), local_today)
        park_views.append({
            "id": park_id, "name": park.name, "market": park.market, "assets": assets,
            "available": sum(1 for a in assets if a["available"]), "chart": chart,
            "carbon": _carbon_summary(carbon), "energies": energies,
        })

    settlement = store.rows(SettlementRecord, time_column="delivery_day",
                            start=local_today - dt.timedelta(days=14), end=local_today + dt.timedelta(days=1),
                            limit=500)
    return {
        "now": _iso(now),
        "today": local_today.isoformat(),
        "daemon": None if state is None else {
            "mode": state.mode, "heartbeat_at": _iso(state.heartbeat_at), "clock_now": _iso(state.clock_now),
            "stopped_at": _iso(state.stopped_at),
        },
        "parks": park_views,
        "awards": award_chart,
        "awarded_intervals": len(award_times),
        "rt_awarded_intervals": len(rt_in_window),
        "real_time": rt_rows,
        "bids": [{"kind": b.kind, "market": b.market_id, "day": b.delivery_day.isoformat(), "status": b.status}
                 for b in bids],
        "settlement": [{"day": s.delivery_day.isoformat(), "park": s.park_id, "market": s.market_id,
                        "net_revenue": round(s.net_revenue, 2), "da_revenue": round(s.da_revenue, 2),
                        "rt_revenue": round(s.rt_revenue, 2), "rt_bid_revenue": round(s.rt_bid_revenue, 2),
                        "imbalance_revenue": round(s.imbalance_revenue, 2),
                        "clawback_revenue": round(s.clawback_revenue, 2), "imbalance_mwh": round(s.imbalance_mwh, 4)}
                       for s in settlement],
        "alerts": alerts,
        "backtests": [{"index": i, "name": b["name"]} for i, b in enumerate(backtests)],
    }


def _extra(row: TelemetryRecord | None) -> dict[str, Any]:
    """The reading's other registers (``Telemetry.extra``); {} if none or not a JSON object."""
    if row is None or not row.extra_json:
        return {}
    try:
        extra = json.loads(row.extra_json)
    except ValueError:
        return {}
    return extra if isinstance(extra, dict) else {}


def _number(value: Any, digits: int = 1) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return round(float(value), digits)


def own_quantities(asset: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """What a heat or hydrogen asset reports besides its electric power, from its last reading.

    Heat producers (heat pump, boiler, an electrolyser recovering heat): ``heat_kw`` and the
    ``heat_level`` they supply; electrolysers ``hydrogen_kg_per_h``; a heat store its
    ``heat_level``, ``stored_kwh`` and ``heat_demand_kw``; a hydrogen store ``stored_kg``
    (the state of charge is the reading's ``soc``). A value the reading lacks is None;
    an electric-only asset gives {}.
    """
    own: dict[str, Any] = {}
    outputs = asset.heat_outputs()
    if outputs:
        own["heat_kw"] = _number(extra.get("heat_kw"))
        own["heat_level"] = next(iter(outputs))
    if asset.produces_hydrogen:
        own["hydrogen_kg_per_h"] = _number(extra.get("hydrogen_kg_per_h"), 3)
    node = asset.storage_node
    if node == "hydrogen":
        own["stored_kg"] = _number(extra.get("stored_kg"))
    elif node is not None:
        own["heat_level"] = node
        own["stored_kwh"] = _number(extra.get("stored_kwh"))
        own["heat_demand_kw"] = _number(extra.get("demand_kw"))
    return own


def own_text(own: dict[str, Any]) -> str:
    """:func:`own_quantities` in words for the asset table, e.g. ``heat 300.0 kW to steam_300c``."""

    def shown(value: float | None) -> str:
        return "?" if value is None else f"{value:.3f}".rstrip("0").rstrip(".")  # 1200, 18.182

    parts = []
    if "hydrogen_kg_per_h" in own:
        parts.append(f"H2 {shown(own['hydrogen_kg_per_h'])} kg/h")
    if "heat_kw" in own:
        parts.append(f"heat {shown(own['heat_kw'])} kW to {own['heat_level']}")
    if "stored_kwh" in own:
        parts.append(f"stores {shown(own['stored_kwh'])} kWh of {own['heat_level']}, "
                     f"demand {shown(own['heat_demand_kw'])} kW")
    if "stored_kg" in own:
        parts.append(f"stores {shown(own['stored_kg'])} kg H2")
    return "; ".join(parts)


def _totals(kind: str, owns: list[dict[str, Any]]) -> dict[str, float | None]:
    """A park's heat (kW produced, kWh stored) or hydrogen (kg/h produced, kg stored) totals,
    over the values reported (None when no asset reported one)."""
    keys = ("heat_kw", "stored_kwh") if kind == "heat" else ("hydrogen_kg_per_h", "stored_kg")
    totals: dict[str, float | None] = {}
    for key in keys:
        values = [o[key] for o in owns if o.get(key) is not None]
        totals[key] = round(sum(values), 3) if values else None
    return totals


def _carbon_summary(rows: list[CarbonIntervalRecord]) -> dict[str, float]:
    emissions = sum(r.import_mwh * (r.intensity_tco2_per_mwh or 0.0) for r in rows)
    return {
        "import_mwh": round(sum(r.import_mwh for r in rows), 3),
        "export_mwh": round(sum(r.export_mwh for r in rows), 3),
        "emissions_tco2": round(emissions, 3),
        "intervals": len(rows),
    }


def dashboard_page(poll_s: float) -> str:
    """The page: a frame the script fills from ``/dashboard/data.json`` every ``poll_s``."""
    return _PAGE.replace("__POLL_MS__", json.dumps(int(poll_s * 1000))).replace(
        "__TITLE__", html.escape("vpp dashboard")
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<link rel="stylesheet" href="/static/uPlot.min.css">
<script src="/static/uPlot.iife.min.js"></script>
<style>
body{font-family:system-ui,sans-serif;margin:1rem 2rem;color:#222}
h1{font-size:1.4rem} h2{font-size:1.1rem;margin-top:1.5rem}
table{border-collapse:collapse;font-size:.85rem} td,th{border-bottom:1px solid #ddd;padding:.2rem .6rem;text-align:left}
.ok{color:#1a7f37} .bad{color:#b42318} .park{border:1px solid #ccc;border-radius:6px;padding:.6rem;margin:.6rem 0}
#alerts li{color:#b42318}
</style></head>
<body>
<h1>vpp: fleet at a glance</h1>
<p id="clock">loading...</p>
<h2>Alerts</h2><ul id="alerts"></ul>
<h2>Portfolio</h2><table id="portfolio"><thead><tr><th>park</th><th>name</th><th>market</th>
<th>assets available</th><th>carbon 7 d (tCO2)</th></tr></thead><tbody></tbody></table>
<h2>Today and tomorrow: awards against prices</h2>
<p id="awards-summary"></p><div id="awards-chart"></div>
<h2>Today: real-time bids and awards</h2>
<p id="rt-summary"></p><table id="real-time"><thead><tr><th>market</th><th>product</th>
<th>period (market time)</th><th>direction</th><th>status</th><th>points (price:MW)</th>
<th>awards (MW @ price)</th></tr></thead><tbody></tbody></table>
<h2>Parks: setpoints against metered power, state of charge, heat and hydrogen</h2><div id="parks"></div>
<h2>Settlement per day and park</h2><table id="settlement"><thead><tr><th>day</th><th>park</th>
<th>net</th><th>day-ahead</th><th>real-time</th><th>real-time bids</th><th>imbalance</th><th>claw-back</th>
<th>imbalance MWh</th></tr></thead><tbody></tbody></table>
<h2>Backtests</h2><ul id="backtests"></ul>
<script>
"use strict";
const POLL_MS = __POLL_MS__;
const charts = {};
function esc(s){return String(s).replace(/[&<>"']/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));}
function chart(id, data, series, width){
  const el = document.getElementById(id);
  if (charts[id]) { charts[id].setData(data); return; }
  const opts = {width: width || 900, height: 220, series: [{}].concat(series),
    scales: {x: {time: true}}, axes: [{}, {}, {side: 1, scale: series.length > 1 ? series[series.length-1].scale : "y"}]};
  charts[id] = new uPlot(opts, data, el);
}
function totals(kind, e){
  const parts = kind === "heat" ? [[e.heat_kw, " kW heat"], [e.stored_kwh, " kWh stored"]]
                                : [[e.hydrogen_kg_per_h, " kg/h H2"], [e.stored_kg, " kg stored"]];
  return parts.filter(([v]) => v !== null && v !== undefined).map(([v, unit]) => ", " + v + unit).join("");
}
function rows(table, html){document.querySelector(table + " tbody").innerHTML = html;}
async function refresh(){
  const response = await fetch("/dashboard/data.json", {cache: "no-store"});
  const d = await response.json();
  document.getElementById("clock").textContent = "now " + d.now + " (day " + d.today + ")" +
    (d.daemon ? ", daemon " + d.daemon.mode + (d.daemon.stopped_at ? " stopped" : " heartbeat " + d.daemon.heartbeat_at) : ", no daemon");
  document.getElementById("alerts").innerHTML = d.alerts.length ? d.alerts.map(a => "<li>" + esc(a) + "</li>").join("") : "<span class=ok>none</span>";
  rows("#portfolio", d.parks.map(p => "<tr data-park='" + esc(p.id) + "'><td>" + esc(p.id) + "</td><td>" + esc(p.name) +
    "</td><td>" + esc(p.market) + "</td><td class=" + (p.available === p.assets.length ? "ok" : "bad") + ">" +
    p.available + "/" + p.assets.length + "</td><td>" + p.carbon.emissions_tco2 + "</td></tr>").join(""));
  document.getElementById("awards-summary").textContent = d.awarded_intervals + " awarded intervals; bids: " +
    (d.bids.map(b => b.kind + " " + b.day + " " + b.status).join(", ") || "none");
  document.getElementById("awards-summary").dataset.intervals = d.awarded_intervals;
  chart("awards-chart", d.awards, [{label: "day-ahead awarded MW", stroke: "#1f6feb", spanGaps: true},
    {label: "real-time awarded MW", stroke: "#cf222e", spanGaps: true},
    {label: "price /MWh", stroke: "#d4a72c", scale: "price"}]);
  document.getElementById("rt-summary").textContent = d.real_time.length + " real-time bids today; " +
    d.rt_awarded_intervals + " intervals with a real-time award";
  document.getElementById("rt-summary").dataset.intervals = d.rt_awarded_intervals;
  rows("#real-time", d.real_time.map(r => "<tr data-key='" + esc(r.key) + "'><td>" + esc(r.market) + "</td><td>" +
    esc(r.product) + "</td><td>" + esc(r.period) + "</td><td>" + esc(r.direction) + "</td><td class=" +
    (r.status === "rejected" ? "bad" : "ok") + ">" + esc(r.status) + "</td><td class=points>" + esc(r.points) +
    "</td><td class=awards>" + (r.awards.map(a => esc(a.interval + " " + a.quantity_mw + " MW @ " + a.price)).join(", ") ||
    "none yet") + "</td></tr>").join(""));
  const parks = document.getElementById("parks");
  for (const p of d.parks) {
    let box = document.getElementById("park-" + p.id);
    if (!box) {
      box = document.createElement("div"); box.className = "park"; box.id = "park-" + p.id;
      box.innerHTML = "<b>" + esc(p.id) + "</b> " + esc(p.name) + " <span class=energies></span><table class=assets></table><div id='chart-" + esc(p.id) + "'></div>";
      parks.appendChild(box);
    }
    box.querySelector("span.energies").textContent = Object.entries(p.energies).map(([kind, e]) =>
      kind + ": " + e.assets.join(", ") + " at " + e.power_kw + " kW electric" + totals(kind, e)).join("; ");
    box.querySelector("table.assets").innerHTML = "<tr><th>asset</th><th>type</th><th>energy</th><th>available</th><th>telemetry age s</th><th>kW</th><th>SoC</th><th>heat / hydrogen</th></tr>" +
      p.assets.map(a => "<tr data-asset='" + esc(a.id) + "'><td>" + esc(a.id) + "</td><td>" + esc(a.type) + "</td><td>" + a.energy + "</td><td class=" +
      (a.available ? "ok>yes" : "bad>" + (a.available === null ? "?" : "no")) + "</td><td>" + (a.telemetry_age_s ?? "-") +
      "</td><td>" + (a.power_kw ?? "-") + "</td><td>" + (a.soc ?? "-") + "</td><td class=own>" + esc(a.own_text) + "</td></tr>").join("");
    box.dataset.setpoints = p.chart[1].filter(v => v !== null).length;
    box.dataset.metered = p.chart[2].filter(v => v !== null).length;
    chart("chart-" + p.id, p.chart, [{label: "setpoint kW", stroke: "#1f6feb"}, {label: "metered kW", stroke: "#1a7f37"},
      {label: "SoC", stroke: "#8250df", scale: "soc"}]);
  }
  rows("#settlement", d.settlement.map(s => "<tr><td>" + s.day + "</td><td>" + esc(s.park) + "</td><td>" + s.net_revenue +
    "</td><td>" + s.da_revenue + "</td><td>" + s.rt_revenue + "</td><td>" + s.rt_bid_revenue + "</td><td>" +
    s.imbalance_revenue + "</td><td>" + s.clawback_revenue + "</td><td>" + s.imbalance_mwh + "</td></tr>").join(""));
  document.getElementById("backtests").innerHTML = d.backtests.map(b => "<li><a href='/backtests/" + b.index +
    "/report.html'>" + esc(b.name) + "</a></li>").join("") || "none";
  document.body.dataset.updated = String(Date.now());
}
refresh().catch(e => console.error(e));
setInterval(() => refresh().catch(e => console.error(e)), POLL_MS);
</script></body></html>
"""
