"""Backtest outputs: summary.json, intervals.csv, settlement.csv, carbon.csv, PNG plots, report.html.

The whole folder is written into a temporary sibling and swapped into
place (:func:`vpp.files.replace_folder`), so a failed or interrupted run
leaves the previous complete report, never a mix of old and new files.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vpp import files

if TYPE_CHECKING:
    from vpp.backtest.run import BacktestResult, RunResult


REPORT_FILES = (
    "summary.json",
    "intervals.csv",
    "portfolio.csv",
    "settlement.csv",
    "carbon.csv",
    "balances.csv",
    "prices_dispatch.png",
    "soc.png",
    "cumulative_revenue.png",
    "carbon.png",
    "heat_balance.png",
    "report.html",
)
"""The files of a backtest report; an output folder holding anything else is refused."""


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` then move ``tmp`` onto ``path`` (see :func:`vpp.files.atomic_write`)."""
    files.atomic_write(path, write)


def check_out(out: Path) -> Path:
    """Raise ``OutputError`` now, before a backtest runs, if ``out`` cannot take a report."""
    return files.check_output_folder(out, REPORT_FILES)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write(
        path,
        lambda tmp: tmp.write_text(
            json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8"
        ),
    )


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"))


def write_csv_chunks(path: Path, chunks: Iterable[pd.DataFrame], columns: Sequence[str]) -> None:
    """One CSV from ``chunks`` written one after another (the text :func:`write_csv` gives
    for their concatenation), so the whole table is never in memory."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            header = True
            for chunk in chunks:
                chunk.to_csv(handle, index=False, header=header, float_format="%.6g")
                header = False
            if header:
                pd.DataFrame(columns=list(columns)).to_csv(handle, index=False)

    atomic_write(path, write)


def _save(fig: plt.Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)


def plot_prices_and_dispatch(
    portfolio: pd.DataFrame, timezone: str, currency: str, path: Path
) -> None:
    """Prices (lines) and the portfolio's net delivered power (bars, > 0 sold)."""
    local = portfolio.index.tz_convert(timezone)
    fig, ax = plt.subplots(figsize=(12, 4.5))
    for column, style in (("da_price", "-"), ("rt_price", ":")):
        if column in portfolio:
            ax.plot(local, portfolio[column], style, lw=1, label=column.replace("_", " "))
    ax.set_ylabel(f"price [{currency}/MWh]")
    ax2 = ax.twinx()
    width = (
        (portfolio.index[1] - portfolio.index[0]) / pd.Timedelta(days=1)
        if len(portfolio) > 1
        else 0.01
    )
    ax2.bar(
        local,
        portfolio["actual_mw"],
        width=width,
        alpha=0.35,
        color="tab:green",
        label="delivered MW",
    )
    ax2.step(
        local, portfolio["award_mw"], where="post", color="k", lw=0.8, label="day-ahead award MW"
    )
    ax2.set_ylabel("power [MW] (> 0 sold)")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8, ncols=4)
    ax.set_title("Prices and portfolio dispatch")
    ax.set_xlabel(f"local time ({timezone})")
    _save(fig, path)


def plot_soc(soc: pd.DataFrame, timezone: str, path: Path) -> None:
    """State of charge of every battery, as a fraction."""
    fig, ax = plt.subplots(figsize=(12, 3.5))
    for column in soc.columns:
        ax.plot(soc.index.tz_convert(timezone), soc[column], lw=1, label=column)
    ax.set_ylim(0, 1)
    ax.set_ylabel("state of charge")
    ax.set_title("Battery state of charge")
    if len(soc.columns):
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_cumulative(revenue: pd.DataFrame, timezone: str, currency: str, path: Path) -> None:
    """Cumulative net revenue of the strategy, perfect foresight and the baselines."""
    fig, ax = plt.subplots(figsize=(12, 3.5))
    for column in revenue.columns:
        ax.plot(revenue.index.tz_convert(timezone), revenue[column].cumsum(), lw=1.2, label=column)
    ax.set_ylabel(f"cumulative revenue [{currency}]")
    ax.set_title("Cumulative net revenue against perfect foresight")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_carbon(carbon: pd.DataFrame, timezone: str, path: Path) -> None:
    """Grid intensity per interval (estimate and annual factor) and the portfolio's emissions."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
    if len(carbon):
        first = carbon.drop_duplicates("interval_start").set_index("interval_start")
        local = pd.DatetimeIndex(first.index).tz_convert(timezone)
        top.plot(local, first["intensity_tco2_per_mwh"], lw=1, label="interval intensity")
        top.plot(local, first["annual_factor_tco2_per_mwh"], "--", lw=1, label="annual factor")
        top.plot(local, first["residual_factor_tco2_per_mwh"], ":", lw=1, label="residual factor")
        per = carbon.groupby("interval_start")[
            ["location_interval_tco2", "location_annual_tco2", "market_tco2"]
        ].sum(min_count=1)
        local_per = pd.DatetimeIndex(per.index).tz_convert(timezone)
        for column, label in (
            ("location_interval_tco2", "location-based (interval intensity)"),
            ("location_annual_tco2", "location-based (annual factor)"),
            ("market_tco2", "market-based"),
        ):
            bottom.plot(local_per, per[column], lw=1, label=label)
    top.set_ylabel("grid factor [tCO2/MWh]")
    top.set_title("Grid carbon intensity (average, not marginal) and scope 2 emissions")
    top.legend(fontsize=8, loc="upper left", ncols=3)
    bottom.set_ylabel("emissions per interval [tCO2]")
    bottom.set_xlabel(f"local time ({timezone})")
    bottom.legend(fontsize=8, loc="upper left", ncols=3)
    _save(fig, path)


#: The summary keys shown in the report's carbon section instead of the main table.
CARBON_KEYS = ("emissions_", "carbon_", "clean_energy_share")


def plot_heat_balance(balances: pd.DataFrame, timezone: str, path: Path) -> None:
    """Per park and node: what converters supplied, what the store took, demand and unmet."""
    nodes = [] if not len(balances) else sorted(
        set(zip(balances["park_id"], balances["node"], strict=True))
    )
    rows = max(len(nodes), 1)
    fig, axes = plt.subplots(rows, 1, figsize=(10, 2.6 * rows), sharex=True, squeeze=False)
    if not nodes:
        axes[0][0].text(0.5, 0.5, "no heat or hydrogen system in this portfolio",
                        ha="center", va="center", transform=axes[0][0].transAxes)
        axes[0][0].set_axis_off()
    for ax, (park_id, node) in zip(axes[:, 0], nodes, strict=False):
        part = balances[(balances["park_id"] == park_id) & (balances["node"] == node)]
        when = pd.DatetimeIndex(part["interval_start"]).tz_convert(timezone)
        unit = str(part["unit"].iloc[0])
        ax.step(when, part["supply"], where="post", label="converters", lw=1)
        ax.step(when, part["supply"] - part["storage_in"], where="post",
                label="converters + store", lw=1)
        ax.step(when, part["demand"], where="post", label="demand", lw=1.2, color="black")
        if part["unmet"].any():
            ax.fill_between(when, 0, part["unmet"], step="post", color="red", alpha=0.4,
                            label="unmet")
        ax.set_ylabel(unit)
        ax.set_title(f"{park_id}: {node}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.autofmt_xdate()
    _save(fig, path)


def _is_carbon(key: str) -> bool:
    return key.startswith(CARBON_KEYS)


def _figure(path: Path) -> str:
    return (
        f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"/></figure>'
    )


def _carbon_section(summary: Mapping[str, Any], image: Path | None) -> str:
    keys = [k for k in summary if _is_carbon(k) and k != "carbon_parks"]
    if not keys:
        return ""
    rows = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(summary[k]))}</td></tr>" for k in keys
    )
    parks = summary.get("carbon_parks") or {}
    park_rows = "\n".join(
        "<tr>"
        + f"<th>{html.escape(str(park))}</th>"
        + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in values.values())
        + "</tr>"
        for park, values in parks.items()
    )
    side = ""
    if "emissions_location_tco2" in summary:
        price = float(summary.get("carbon_price_per_t") or 0.0)
        emissions = summary.get("emissions_location_tco2")
        cost = price * float(emissions) if isinstance(emissions, (int, float)) else None
        side = (
            "<table><tr><th>internal carbon price</th><th>net revenue</th>"
            "<th>emissions (location, interval)</th><th>carbon cost at that price</th></tr>"
            f"<tr><td>{html.escape(_fmt(price))} per tCO2</td>"
            f"<td>{html.escape(_fmt(summary.get('net_revenue')))}</td>"
            f"<td>{html.escape(_fmt(emissions))} tCO2</td>"
            f"<td>{html.escape(_fmt(cost))}</td></tr></table>"
        )
    header = ""
    if parks:
        names = next(iter(parks.values())).keys()
        header = "<tr><th>park</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
    return f"""<h2>Carbon</h2>
<p>Scope 2 from metered grid import: location-based with the interval intensity (an average
estimate from the published fundamentals where the price file has them, the annual factor
otherwise) and with the annual factor; market-based with certificates matched first, then the
residual factor. Export does not reduce scope 2; on-site PV consumed on site counts zero.
Electricity at {html.escape("GB/T 2589-2020 当量值 0.1229 kgce/kWh")}. See docs/carbon.md.</p>
{side}
<table>{rows}</table>
<table>{header}{park_rows}</table>
{_figure(image) if image is not None else ""}
"""


SWEEP_FILES = ("carbon_sweep.csv", "carbon_sweep.png")
"""The files a carbon-price sweep writes next to its runs' folders."""

SWEEP_COLUMNS = (
    "carbon_price_per_t", "net_revenue", "emissions_location_tco2",
    "emissions_location_annual_tco2", "emissions_market_tco2", "flexibility_capture_ratio",
    "folder",
)


def sweep_folder(price_per_t: float) -> str:
    """The sub-folder of one run of a carbon-price sweep, e.g. ``carbon_price_200``."""
    return f"carbon_price_{price_per_t:g}".replace(".", "_")


def write_carbon_sweep(
    summaries: Sequence[Mapping[str, Any]], out: Path, currency: str
) -> list[Path]:
    """``carbon_sweep.csv`` (one row per price) and a plot of revenue against emissions."""
    rows = pd.DataFrame(
        [
            {
                **{k: s.get(k) for k in SWEEP_COLUMNS if k != "folder"},
                "folder": sweep_folder(float(s.get("carbon_price_per_t") or 0.0)),
            }
            for s in summaries
        ],
        columns=list(SWEEP_COLUMNS),
    )
    csv_path, png_path = out / SWEEP_FILES[0], out / SWEEP_FILES[1]
    write_csv(csv_path, rows)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = pd.to_numeric(rows["emissions_location_tco2"], errors="coerce")
    y = pd.to_numeric(rows["net_revenue"], errors="coerce")
    ax.plot(x, y, marker="o")
    for price, xi, yi in zip(rows["carbon_price_per_t"], x, y, strict=True):
        ax.annotate(f"{float(price):g}", (xi, yi), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("scope 2 location-based emissions [tCO2]")
    ax.set_ylabel(f"net revenue [{currency}]")
    ax.set_title("Revenue against emissions by internal carbon price [per tCO2]")
    ax.grid(alpha=0.3)
    _save(fig, png_path)
    return [csv_path, png_path]


def plot_sweep(table: pd.DataFrame, parameters: Sequence[str], path: Path) -> None:
    """Capture against each parameter the sweep varies (one panel each), one point per cell.

    Capture is the flexibility capture ratio where the cells ran the baselines, else
    the capture ratio against perfect foresight.
    """
    column = (
        "flexibility_capture_ratio"
        if "flexibility_capture_ratio" in table and table["flexibility_capture_ratio"].notna().any()
        else "capture_ratio"
    )
    varied = [p for p in parameters if p in table and table[p].astype(str).nunique() > 1]
    varied = varied or [p for p in parameters if p in table][:1]
    fig, axes = plt.subplots(
        1, max(len(varied), 1), figsize=(4.2 * max(len(varied), 1), 3.6), squeeze=False
    )
    capture = pd.to_numeric(table.get(column, pd.Series(dtype=float)), errors="coerce")
    for ax, name in zip(axes[0], varied, strict=False):
        values = table[name]
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all():
            ax.scatter(numeric, capture)
            for x in sorted(numeric.unique()):
                ax.plot(x, capture[numeric == x].mean(), "k_", markersize=18)
        else:
            labels = sorted(values.astype(str).unique())
            where = values.astype(str).map({label: i for i, label in enumerate(labels)})
            ax.scatter(where, capture)
            ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
        ax.set_xlabel(name)
        ax.set_ylabel(column.replace("_", " "))
        ax.grid(alpha=0.3)
    fig.suptitle(f"Sweep: {column.replace('_', ' ')} per cell (bars: mean)")
    _save(fig, path)


def write_html(
    path: Path, summary: Mapping[str, Any], images: list[Path], carbon_image: Path | None = None
) -> None:
    """A one-page report with the summary table, the plots and the carbon section embedded."""
    rows = "\n".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in summary.items()
        if not _is_carbon(str(k))
    )
    figures = "\n".join(_figure(p) for p in images) + _carbon_section(summary, carbon_image)
    title = f"vpp backtest — {summary.get('market', '')} {summary.get('start', '')} to {summary.get('end', '')}"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }}
th {{ font-weight: 600; }} td {{ font-variant-numeric: tabular-nums; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<table>{rows}</table>
{figures}
</body></html>
"""
    atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    return str(value)


def write_backtest(result: BacktestResult, out: Path) -> list[Path]:
    """Write every backtest output into ``out``, replacing it whole; return the files written.

    Raises ``OutputError`` (and leaves the previous report) if ``out`` cannot
    be written or holds files that are not part of a report.
    """
    with files.replace_folder(out, REPORT_FILES) as tmp:
        written = _write_report(result, tmp)
    return [out / p.name for p in written]


def _write_report(result: BacktestResult, out: Path) -> list[Path]:
    summary = result.summary()
    main = result.main
    tz = result.timezone
    portfolio = main.portfolio.copy()
    written = [
        out / "summary.json",
        out / "intervals.csv",
        out / "portfolio.csv",
        out / "settlement.csv",
    ]
    write_json(written[0], summary)
    write_csv_chunks(written[1], _intervals(main), main.asset_rows.column_names)
    portfolio_out = portfolio.reset_index()
    portfolio_out["interval_start"] = portfolio_out["interval_start"].map(lambda t: t.isoformat())
    write_csv(written[2], portfolio_out)
    write_csv(written[3], main.settlement)
    carbon = result.carbon.intervals() if result.carbon is not None else pd.DataFrame(
        columns=["interval_start", "park_id"]
    )
    carbon_out = carbon.copy()
    carbon_out["interval_start"] = carbon_out["interval_start"].map(lambda t: t.isoformat())
    written.append(out / "carbon.csv")
    write_csv(written[4], carbon_out)
    images = [out / "prices_dispatch.png", out / "soc.png", out / "cumulative_revenue.png"]
    plot_prices_and_dispatch(portfolio, tz, result.currency, images[0])
    socs = [
        chunk.dropna(subset=["soc_end"])
        for chunk in main.asset_rows.chunks(["interval_start", "asset_id", "soc_end"])
    ]
    socs = [chunk for chunk in socs if len(chunk)]
    soc = (
        pd.concat(socs, ignore_index=True)
        if socs
        else pd.DataFrame(columns=["interval_start", "asset_id", "soc_end"])
    ).pivot_table(index="interval_start", columns="asset_id", values="soc_end")
    soc.index = pd.DatetimeIndex(soc.index)
    plot_soc(soc, tz, images[1])
    revenue = pd.DataFrame({f"{main.strategy} (net)": _net(portfolio)})
    for name, run in result.baselines.items():
        if run is not main:
            revenue[f"{name} (net)"] = _net(run.portfolio)
    if len(result.foresight):
        per_day = result.foresight.set_index("day")["revenue"]
        local_day = portfolio.index.tz_convert(tz).date
        last_of_day = ~pd.Series(local_day).duplicated(keep="last").to_numpy()
        foresight = pd.Series(0.0, index=portfolio.index)
        foresight[last_of_day] = [per_day.get(d, 0.0) for d in np.asarray(local_day)[last_of_day]]
        revenue["perfect foresight"] = foresight
    plot_cumulative(revenue, tz, result.currency, images[2])
    carbon_image = out / "carbon.png"
    plot_carbon(carbon, tz, carbon_image)
    balances = main.balances
    balances_path = out / "balances.csv"
    balances_out = balances.copy() if len(balances) else pd.DataFrame(
        columns=["interval_start", "park_id", "node", "unit", "supply", "demand", "storage_in",
                 "unmet", "surplus"]
    )
    if len(balances_out):
        balances_out["interval_start"] = pd.DatetimeIndex(
            balances_out["interval_start"]
        ).map(lambda t: t.isoformat())
    write_csv(balances_path, balances_out)
    heat_image = out / "heat_balance.png"
    plot_heat_balance(balances, tz, heat_image)
    shown = [*images, heat_image] if len(balances) else images
    write_html(out / "report.html", summary, shown, carbon_image)
    return [*written, *images, carbon_image, balances_path, heat_image, out / "report.html"]


def _intervals(run: RunResult) -> Iterator[pd.DataFrame]:
    """``intervals.csv`` a spooled day at a time: the per-asset rows, times in ISO 8601."""
    for chunk in run.asset_rows.chunks():
        out = chunk.copy()
        out["interval_start"] = pd.to_datetime(out["interval_start"]).map(lambda t: t.isoformat())
        yield out


def _net(portfolio: pd.DataFrame) -> pd.Series:
    return portfolio["da_revenue"] + portfolio["rt_revenue"] - portfolio["degradation_cost"]
