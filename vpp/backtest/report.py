"""Backtest outputs: summary.json, intervals.csv, settlement.csv, PNG plots, report.html.

The whole folder is written into a temporary sibling and swapped into
place (:func:`vpp.files.replace_folder`), so a failed or interrupted run
leaves the previous complete report, never a mix of old and new files.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vpp import files

if TYPE_CHECKING:
    from vpp.backtest.run import BacktestResult


REPORT_FILES = (
    "summary.json",
    "intervals.csv",
    "portfolio.csv",
    "settlement.csv",
    "prices_dispatch.png",
    "soc.png",
    "cumulative_revenue.png",
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


def write_html(path: Path, summary: Mapping[str, Any], images: list[Path]) -> None:
    """A one-page report with the summary table and the plots embedded."""
    rows = "\n".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in summary.items()
    )
    figures = "\n".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"/></figure>'
        for p in images
    )
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
    intervals = main.assets.copy()
    intervals["interval_start"] = pd.to_datetime(intervals["interval_start"]).map(
        lambda t: t.isoformat()
    )
    portfolio = main.portfolio.copy()
    written = [
        out / "summary.json",
        out / "intervals.csv",
        out / "portfolio.csv",
        out / "settlement.csv",
    ]
    write_json(written[0], summary)
    write_csv(written[1], intervals)
    portfolio_out = portfolio.reset_index()
    portfolio_out["interval_start"] = portfolio_out["interval_start"].map(lambda t: t.isoformat())
    write_csv(written[2], portfolio_out)
    write_csv(written[3], main.settlement)
    images = [out / "prices_dispatch.png", out / "soc.png", out / "cumulative_revenue.png"]
    plot_prices_and_dispatch(portfolio, tz, result.currency, images[0])
    socs = main.assets.dropna(subset=["soc_end"])
    soc = socs.pivot_table(index="interval_start", columns="asset_id", values="soc_end")
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
    write_html(out / "report.html", summary, images)
    return [*written, *images, out / "report.html"]


def _net(portfolio: pd.DataFrame) -> pd.Series:
    return portfolio["da_revenue"] + portfolio["rt_revenue"] - portfolio["degradation_cost"]
