"""``vpp carbon``: the ledger of certificates, green-power contracts and offsets.

Commands: ``import-certificates``, ``retire``, ``ledger``. ``report`` (the
park indicator and scope 2 both ways) joins this group later.

The store is the one of ``--config`` (``[store] url`` or ``VPP_DATABASE_URL``,
as for ``vpp enroll``), or ``--store URL``, which overrides both.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

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


app.command("import-certificates")(import_certificates)
app.command()(retire)
app.command()(ledger)
