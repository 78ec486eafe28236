"""``vpp carbon``: the ledger of certificates, green-power contracts and offsets.

Commands: ``import-certificates``, ``retire``, ``ledger``, and ``report`` (one
park's indicator, scope 1 and 2 both ways, certificates and offsets retired,
the gap to the threshold, from the daemon's store or a backtest folder).

The store is the one of ``--config`` (``[store] url`` or ``VPP_DATABASE_URL``,
as for ``vpp enroll``), or ``--store URL``, which overrides both.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import pandas as pd
import typer
from rich.table import Table

from vpp.carbon import INSTRUMENT_KINDS, QUANTITY_UNIT, LedgerEntry, read_certificates
from vpp.cli._common import check_name, console, fail, fail_on, load, open_store
from vpp.errors import VppError
from vpp.files import describe_os_error
from vpp.store import Store

app = typer.Typer(
    help="Carbon ledger: import certificates (GEC), green-power contracts and offsets (CCER); retire them.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config folder or vpp.toml [default: ./config]"),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL (e.g. sqlite:///var/vpp.db); overrides [store] url and VPP_DATABASE_URL",
    ),
]

_KIND_LABEL = {"gec": "GEC", "green_power": "green power", "ccer": "CCER"}


def _store(store_url: str | None, config: Path | None) -> Store:
    """The store named by ``--store``, else the config's (as ``vpp enroll``)."""
    if store_url is None:
        return open_store(load(config))
    try:
        return Store(store_url)
    except VppError as exc:
        fail_on(exc)
    except OSError as exc:  # the folder of a SQLite file cannot be created
        fail(f"cannot open store --store: {describe_os_error(exc)}; give another --store URL")


def _totals(entries: list[LedgerEntry]) -> str:
    """``2 GEC, 1 CCER: 1,500 MWh, 200 tCO2``."""
    kinds = [
        f"{n} {_KIND_LABEL[kind]}"
        for kind in INSTRUMENT_KINDS
        if (n := sum(1 for e in entries if e.instrument.kind == kind))
    ]
    units: dict[str, float] = {}
    for entry in entries:
        units[entry.instrument.unit] = (
            units.get(entry.instrument.unit, 0.0) + entry.instrument.quantity
        )
    amounts = [f"{units.get(unit, 0.0):,.6g} {unit}" for unit in ("MWh", "tCO2")]
    return f"{', '.join(kinds)}: {', '.join(amounts)}"


def import_certificates(
    file: Annotated[Path, typer.Argument(help="Certificate CSV file (docs/carbon-ledger.md)")],
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Check a certificate file whole, then write it to the ledger in one transaction."""
    instruments = read_certificates(file)
    ledger = _store(store, config)
    written = ledger.add_instruments(instruments)
    counts = ", ".join(f"{written[kind]} {_KIND_LABEL[kind]}" for kind in INSTRUMENT_KINDS)
    console.print(
        f"[green]imported[/] {len(instruments)} instrument(s) ({counts}) into {ledger.safe_url}"
    )


def retire(
    park: Annotated[str, typer.Option("--park", help="Enrolled park whose emissions they cover")],
    period: Annotated[str, typer.Option("--period", help="Month YYYY-MM")],
    ids: Annotated[list[str], typer.Option("--id", help="Instrument id; repeat for several")],
    note: Annotated[str, typer.Option("--note", help="Free text kept with the retirement")] = "",
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Retire instruments against a park's month in one transaction: all of them, or none."""
    ledger = _store(store, config)
    retired = ledger.retire(park, period, ids, note=note)
    console.print(
        f"[green]retired[/] {len(retired)} instrument(s) to {park} for {period}: {_totals(retired)}",
        highlight=False,
    )


def _entry_json(entry: LedgerEntry) -> dict[str, Any]:
    i = entry.instrument
    r = entry.retirement
    return {
        "id": i.id,
        "kind": i.kind,
        "vintage": i.vintage,
        "quantity": i.quantity,
        "unit": i.unit,
        "price_per_unit": i.price_per_unit,
        "currency": i.currency,
        "source": i.source,
        "park_id": i.park_id,
        "delivery_start": None if i.delivery_start is None else i.delivery_start.isoformat(),
        "delivery_end": None if i.delivery_end is None else i.delivery_end.isoformat(),
        "imported_at": entry.imported_at.isoformat(),
        "retirement": None
        if r is None
        else {
            "park_id": r.park_id,
            "period": r.period,
            "quantity": r.quantity,
            "unit": r.unit,
            "retired_at": r.retired_at.isoformat(),
            "note": r.note,
        },
    }


def ledger(
    park: Annotated[
        str | None, typer.Option("--park", help="Only this park's instruments and retirements")
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="gec, green_power or ccer")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON on stdout instead of a table")
    ] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """List the ledger's instruments and whether, where and when each was retired."""
    if kind is not None:
        check_name("--kind", kind, INSTRUMENT_KINDS)
    ledger_store = _store(store, config)
    entries = ledger_store.instruments(kind=kind, park_id=park)
    if as_json:
        typer.echo(json.dumps([_entry_json(e) for e in entries], indent=2, ensure_ascii=False))
        return
    if not entries:
        console.print("no instruments in the ledger; run `vpp carbon import-certificates FILE`")
        return
    # Delivery hours in the owning park's time zone (stored in UTC); UTC for unassigned ones.
    zones = {p.id: ZoneInfo(p.timezone) for p in ledger_store.parks()}
    table = Table(title="Carbon ledger")
    for column in ("id", "kind", "vintage", "quantity", "price", "park", "hours", "retired"):
        table.add_column(column, justify="right" if column in ("quantity", "price") else "left")
    for entry in entries:
        i, r = entry.instrument, entry.retirement
        zone = zones.get(i.park_id or "", dt.UTC)
        hours = (
            "annual"
            if i.delivery_start is None or i.delivery_end is None
            else f"{i.delivery_start.astimezone(zone).isoformat(timespec='minutes')} to "
            f"{i.delivery_end.astimezone(zone).isoformat(timespec='minutes')}"
        )
        table.add_row(
            i.id,
            i.kind,
            str(i.vintage),
            f"{i.quantity:,.6g} {QUANTITY_UNIT[i.kind]}",
            f"{i.price_per_unit:,.2f} {i.currency}/{i.unit}",
            i.park_id or "any",
            hours,
            "no" if r is None else f"{r.park_id} {r.period} ({r.retired_at.date().isoformat()})",
        )
    console.print(table)
    retired = [e for e in entries if e.retired]
    console.print(
        f"{len(entries)} instrument(s), {len(retired)} retired"
        + (f" ({_totals(retired)})" if retired else ""),
        highlight=False,
    )


def report(
    park: Annotated[str, typer.Option("--park", help="The park to report on")],
    start: Annotated[str, typer.Option("--start", help="First local day YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--end", help="Last local day YYYY-MM-DD")],
    backtest: Annotated[
        Path | None,
        typer.Option("--backtest", help="A backtest output folder (its carbon.csv) instead of "
                     "the daemon's store"),
    ] = None,
    matching: Annotated[
        str, typer.Option("--matching", help="Certificate matching: hourly or annual")
    ] = "hourly",
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON on stdout instead of a table")
    ] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """One park's carbon over a period: the 单位能耗碳排放 indicator and its gap to the threshold,
    scope 1 and scope 2 both ways, certificates and offsets retired, the clean-energy share."""
    from vpp.carbon.accounting import MATCHING_RULES
    from vpp.carbon.report import COLUMNS, park_report, read_backtest_intervals
    from vpp.cli._common import parse_day

    first, last = parse_day(start, "--start"), parse_day(end, "--end")
    if first > last:
        fail(f"--start {first} is after --end {last}; give --start <= --end")
    check_name("--matching", matching, MATCHING_RULES)
    cfg = load(config)
    if park not in cfg.parks:
        fail(f"--park {park!r}: unknown park; known: {', '.join(sorted(cfg.parks)) or 'none'}")
    spec = cfg.parks[park]
    ledger_store = _store(store, config)
    try:
        if backtest is not None:
            frame = read_backtest_intervals(backtest)
            frame = frame[frame["park_id"] == park]
            source = f"{backtest / 'carbon.csv'}"
        else:
            rows = ledger_store.carbon_intervals(park, first, last)
            frame = pd.DataFrame(
                [{c: getattr(r, c) for c in COLUMNS} for r in rows], columns=list(COLUMNS),
                index=pd.DatetimeIndex(
                    [r.interval_start for r in rows], name="interval_start", tz="UTC"
                ),
            )
            source = f"store {ledger_store.safe_url}"
        retired = ledger_store.retirements(
            park, first=f"{first:%Y-%m}", last=f"{last:%Y-%m}"
        )
        result = park_report(
            spec, frame, first, last, source=source, retired=retired, matching=matching
        )
    except VppError as exc:
        fail_on(exc)
    data = result.as_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    _print_report(data)


def _print_report(data: dict[str, Any]) -> None:
    def num(key: str, unit: str = "", digits: int = 3) -> str:
        value = data.get(key)
        return "-" if value is None else f"{value:,.{digits}f}{(' ' + unit) if unit else ''}"

    table = Table(title=f"Carbon {data['park_id']} {data['start']} to {data['end']}")
    table.add_column("item")
    table.add_column("value", justify="right")
    passes = data["passes"]
    verdict = "-" if passes is None else ("within the threshold" if passes else "ABOVE the threshold")
    rows = [
        ("单位能耗碳排放 indicator", num("carbon_intensity_tco2_per_tce", "tCO2/tce", 4)
         + f" ({data['carbon_intensity_basis'] or '-'}-based)"),
        ("threshold", num("threshold_tco2_per_tce", "tCO2/tce", 2) + f" -- {data['threshold']}"),
        ("gap to threshold", num("gap_tco2_per_tce", "tCO2/tce", 4) + f" ({verdict})"),
        ("clean-energy share", num("clean_energy_share", "", 4)
         + f" (guide {data['clean_energy_share_guide']:.2f})"),
        ("energy use", num("energy_tce", "tce") + f" (~{data['annual_energy_tce']:,.0f} tce/yr)"),
        ("grid import / export", f"{num('import_mwh', 'MWh')} / {num('export_mwh', 'MWh')}"),
        ("on-site renewable", num("onsite_renewable_mwh", "MWh")),
        ("scope 1", num("scope1_tco2", "tCO2")),
        ("scope 2 location (interval intensity)", num("scope2_location_tco2", "tCO2")),
        ("scope 2 location (annual factor)", num("scope2_location_annual_tco2", "tCO2")),
        ("scope 2 market-based", num("scope2_market_tco2", "tCO2")
         + (f" ({data['scope2_market_reason']})" if data.get("scope2_market_reason") else "")),
        (f"certificates retired / matched ({data['matching']})",
         f"{num('certificates_retired_mwh', 'MWh')} / {num('certificates_matched_mwh', 'MWh')}"),
        ("offsets retired (CCER)", num("offsets_retired_tco2", "tCO2")),
        ("gross emissions / net of offsets",
         f"{num('gross_tco2', 'tCO2')} / {num('net_after_offsets_tco2', 'tCO2')}"),
    ]
    for item, value in rows:
        table.add_row(item, value)
    console.print(table)
    console.print(f"from {data['source']} ({data['intervals']} intervals)", highlight=False)


app.command("import-certificates")(import_certificates)
app.command()(retire)
app.command()(ledger)
app.command()(report)
