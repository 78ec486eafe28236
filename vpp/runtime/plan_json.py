"""Day plans as data: a :class:`strategies.DayAheadResult` to and from versioned JSON.

The store keeps what the strategy decided with a day-ahead bid so a restarted
daemon re-sends the very same bid and splits its awards with the very same
allocation. It used to be a pickle, which runs code when read: anyone able to
write the database (a shared PostgreSQL) would run code as the daemon. This
is plain JSON with explicit types instead, read back strictly: an unknown or
missing key, a wrong type or a non-finite number is a :class:`PlanFormatError`
naming the field, and the caller treats the plan as missing.

Layout (``schema_version`` 1)::

    {"schema_version": 1,
     "bid": <vpp.wire bid JSON>,
     "fallback": bool, "errors": {park_id: reason},
     "stats": null | {"solver", "status", "objective", "build_s", "compile_s",
                      "solve_s", "total_s"},
     "allocation": null | {"index": [ISO], "product_starts": [ISO],
                           "product_of": [int], "groups": [[[int]]],
                           "group_quantity_mw": [[float]],
                           "asset_power_kw": [{"park_id", "asset_id", "values": [[float]]}],
                           "park_power_kw": [{"park_id", "values": [[float]]}]},
     "expected_schedule": {"index": [ISO], "asset_power_kw": <frame>,
                           "park_power_kw": <frame>, "soc_kwh": <frame>,
                           "objective": float, "stats": ..., "fallback": bool,
                           "errors": {...}}}

    <frame> = {"column_names": [str], "columns": [[str]], "values": [[float]]}
              (values: one row per interval of ``index``)
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from strategies import BidAllocation, DayAheadResult, Schedule, SolveStats, SolveStatus
from vpp.wire import WireError, bid_from_json, bid_to_json

PLAN_SCHEMA_VERSION = 1


class PlanFormatError(ValueError):
    """A stored plan does not have the documented shape; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


# --------------------------------------------------------------------------- writing


def _finite(values: np.ndarray, field: str) -> list[Any]:
    array = np.asarray(values, dtype=float)
    if not np.isfinite(array).all():
        raise PlanFormatError(field, "contains a non-finite number; a plan must be finite")
    return array.tolist()


def _times(index: pd.DatetimeIndex) -> list[str]:
    return [t.isoformat() for t in pd.DatetimeIndex(index).tz_convert("UTC")]


def _stats_to(stats: SolveStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {
        "solver": stats.solver,
        "status": stats.status.value,
        "objective": float(stats.objective),
        "build_s": float(stats.build_s),
        "compile_s": float(stats.compile_s),
        "solve_s": float(stats.solve_s),
        "total_s": float(stats.total_s),
    }


def _frame_to(frame: pd.DataFrame, field: str) -> dict[str, Any]:
    columns = frame.columns
    if isinstance(columns, pd.MultiIndex):
        labels = [[str(level) for level in c] for c in columns]
    else:
        labels = [[str(c)] for c in columns]
    return {
        "column_names": [str(n) for n in columns.names],
        "columns": labels,
        "values": _finite(frame.to_numpy(dtype=float), f"{field}.values"),
    }


def plan_to_json(result: DayAheadResult) -> str:
    """The plan as JSON text (raises :class:`PlanFormatError` for a non-finite value)."""
    allocation = result.allocation
    schedule = result.expected_schedule
    data: dict[str, Any] = {
        "schema_version": PLAN_SCHEMA_VERSION,
        "bid": bid_to_json(result.bid),
        "fallback": bool(result.fallback),
        "errors": {str(k): str(v) for k, v in result.errors.items()},
        "stats": _stats_to(result.stats),
        "allocation": None,
        "expected_schedule": {
            "index": _times(schedule.index),
            "asset_power_kw": _frame_to(schedule.asset_power_kw, "expected_schedule.asset_power_kw"),
            "park_power_kw": _frame_to(schedule.park_power_kw, "expected_schedule.park_power_kw"),
            "soc_kwh": _frame_to(schedule.soc_kwh, "expected_schedule.soc_kwh"),
            "objective": float(schedule.objective),
            "stats": _stats_to(schedule.stats),
            "fallback": bool(schedule.fallback),
            "errors": {str(k): str(v) for k, v in schedule.errors.items()},
        },
    }
    if not math.isfinite(data["expected_schedule"]["objective"]):
        raise PlanFormatError("expected_schedule.objective", "is not finite")
    if allocation is not None:
        data["allocation"] = {
            "index": _times(allocation.index),
            "product_starts": _times(allocation.product_starts),
            "product_of": [int(x) for x in allocation.product_of],
            "groups": [[[int(s) for s in g] for g in product] for product in allocation.groups],
            "group_quantity_mw": [
                _finite(q, f"allocation.group_quantity_mw[{j}]")
                for j, q in enumerate(allocation.group_quantity_mw)
            ],
            "asset_power_kw": [
                {"park_id": park, "asset_id": asset,
                 "values": _finite(v, f"allocation.asset_power_kw[{park}/{asset}]")}
                for (park, asset), v in allocation.asset_power_kw.items()
            ],
            "park_power_kw": [
                {"park_id": park, "values": _finite(v, f"allocation.park_power_kw[{park}]")}
                for park, v in allocation.park_power_kw.items()
            ],
        }
    return json.dumps(data, allow_nan=False, separators=(",", ":"))


# --------------------------------------------------------------------------- reading


def _reject_constant(name: str) -> Any:
    raise PlanFormatError("(document)", f"{name} is not allowed; numbers must be finite")


def _object(value: Any, field: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PlanFormatError(field, f"expected an object, got {type(value).__name__}")
    missing = keys - value.keys()
    if missing:
        raise PlanFormatError(field, f"missing key(s) {sorted(missing)}")
    unknown = value.keys() - keys
    if unknown:
        raise PlanFormatError(field, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(keys)}")
    return value


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise PlanFormatError(field, f"expected a list, got {type(value).__name__}")
    return value


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise PlanFormatError(field, f"expected a string, got {value!r}")
    return value


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise PlanFormatError(field, f"expected true or false, got {value!r}")
    return value


def _float(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PlanFormatError(field, f"expected a finite number, got {value!r}")
    return float(value)


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanFormatError(field, f"expected an integer, got {value!r}")
    return value


def _floats(value: Any, field: str) -> np.ndarray:
    return np.array([_float(x, f"{field}[{i}]") for i, x in enumerate(_list(value, field))], dtype=float)


def _matrix(value: Any, field: str, shape: tuple[int | None, int] | None = None) -> np.ndarray:
    rows = [_floats(r, f"{field}[{i}]") for i, r in enumerate(_list(value, field))]
    width = len(rows[0]) if rows else 0
    if any(len(r) != width for r in rows):
        raise PlanFormatError(field, "rows of unequal length")
    array = np.array(rows, dtype=float).reshape(len(rows), width)
    if shape is not None:
        rows_expected, cols_expected = shape
        if (rows_expected is not None and array.shape[0] != rows_expected) or array.shape[1] != cols_expected:
            raise PlanFormatError(field, f"shape {array.shape} does not match {shape}")
    return array


def _index(value: Any, field: str) -> pd.DatetimeIndex:
    stamps = []
    for i, item in enumerate(_list(value, field)):
        text = _str(item, f"{field}[{i}]")
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise PlanFormatError(f"{field}[{i}]", f"{text!r} is not ISO 8601") from exc
        if moment.tzinfo is None:
            raise PlanFormatError(f"{field}[{i}]", f"{text!r} has no UTC offset")
        stamps.append(moment.astimezone(dt.UTC))
    return pd.DatetimeIndex(stamps).tz_convert("UTC")


def _errors(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise PlanFormatError(field, f"expected an object, got {type(value).__name__}")
    return {_str(k, field): _str(v, f"{field}.{k}") for k, v in value.items()}


def _stats(value: Any, field: str) -> SolveStats | None:
    if value is None:
        return None
    data = _object(
        value, field,
        {"solver", "status", "objective", "build_s", "compile_s", "solve_s", "total_s"},
    )
    status = _str(data["status"], f"{field}.status")
    try:
        solve_status = SolveStatus(status)
    except ValueError as exc:
        allowed = [s.value for s in SolveStatus]
        raise PlanFormatError(f"{field}.status", f"{status!r} is not one of {allowed}") from exc
    return SolveStats(
        _str(data["solver"], f"{field}.solver"),
        solve_status,
        _float(data["objective"], f"{field}.objective"),
        _float(data["build_s"], f"{field}.build_s"),
        _float(data["compile_s"], f"{field}.compile_s"),
        _float(data["solve_s"], f"{field}.solve_s"),
        _float(data["total_s"], f"{field}.total_s"),
    )


def _frame(value: Any, field: str, index: pd.DatetimeIndex) -> pd.DataFrame:
    data = _object(value, field, {"column_names", "columns", "values"})
    names = [_str(n, f"{field}.column_names[{i}]") for i, n in
             enumerate(_list(data["column_names"], f"{field}.column_names"))]
    if not names:
        raise PlanFormatError(f"{field}.column_names", "is empty")
    labels: list[tuple[str, ...]] = []
    for i, label in enumerate(_list(data["columns"], f"{field}.columns")):
        parts = tuple(_str(x, f"{field}.columns[{i}]") for x in _list(label, f"{field}.columns[{i}]"))
        if len(parts) != len(names):
            raise PlanFormatError(f"{field}.columns[{i}]", f"expected {len(names)} labels")
        labels.append(parts)
    values = _matrix(data["values"], f"{field}.values", (len(index), len(labels)))
    if len(names) == 1:
        columns: pd.Index = pd.Index([c[0] for c in labels], name=names[0])
    else:
        columns = pd.MultiIndex.from_tuples(labels, names=names)
    if not labels:
        values = np.zeros((len(index), 0))
    return pd.DataFrame(values, index=index, columns=columns)


def _allocation(value: Any, field: str) -> BidAllocation | None:
    if value is None:
        return None
    data = _object(
        value, field,
        {"index", "product_starts", "product_of", "groups", "group_quantity_mw",
         "asset_power_kw", "park_power_kw"},
    )
    index = _index(data["index"], f"{field}.index")
    starts = _index(data["product_starts"], f"{field}.product_starts")
    product_of = np.array(
        [_int(x, f"{field}.product_of[{i}]") for i, x in enumerate(_list(data["product_of"], f"{field}.product_of"))],
        dtype=int,
    )
    if len(product_of) != len(index) or (len(product_of) and not (
        (product_of >= 0).all() and (product_of < len(starts)).all()
    )):
        raise PlanFormatError(f"{field}.product_of", "does not map every interval to a product")
    groups: list[list[np.ndarray]] = []
    for j, product in enumerate(_list(data["groups"], f"{field}.groups")):
        groups.append([
            np.array([_int(s, f"{field}.groups[{j}][{g}]") for s in _list(members, f"{field}.groups[{j}][{g}]")], dtype=int)
            for g, members in enumerate(_list(product, f"{field}.groups[{j}]"))
        ])
    quantities = [_floats(q, f"{field}.group_quantity_mw[{j}]")
                  for j, q in enumerate(_list(data["group_quantity_mw"], f"{field}.group_quantity_mw"))]
    if len(groups) != len(starts) or len(quantities) != len(starts):
        raise PlanFormatError(f"{field}.groups", "needs one entry per product start")
    for j, (product, q) in enumerate(zip(groups, quantities, strict=True)):
        if not product or len(q) != len(product) or any(len(g) == 0 for g in product):
            raise PlanFormatError(f"{field}.groups[{j}]", "needs one non-empty group per quantity")
    assets: dict[tuple[str, str], np.ndarray] = {}
    for i, item in enumerate(_list(data["asset_power_kw"], f"{field}.asset_power_kw")):
        where = f"{field}.asset_power_kw[{i}]"
        entry = _object(item, where, {"park_id", "asset_id", "values"})
        key = (_str(entry["park_id"], f"{where}.park_id"), _str(entry["asset_id"], f"{where}.asset_id"))
        assets[key] = _matrix(entry["values"], f"{where}.values", (None, len(index)))
    parks: dict[str, np.ndarray] = {}
    for i, item in enumerate(_list(data["park_power_kw"], f"{field}.park_power_kw")):
        where = f"{field}.park_power_kw[{i}]"
        entry = _object(item, where, {"park_id", "values"})
        parks[_str(entry["park_id"], f"{where}.park_id")] = _matrix(
            entry["values"], f"{where}.values", (None, len(index))
        )
    scenarios = {v.shape[0] for v in [*assets.values(), *parks.values()]}
    if len(scenarios) > 1:
        raise PlanFormatError(f"{field}.asset_power_kw", "scenario counts differ between entries")
    count = scenarios.pop() if scenarios else 0
    for j, product in enumerate(groups):
        if any(((g < 0) | (g >= count)).any() for g in product):
            raise PlanFormatError(f"{field}.groups[{j}]", f"scenario index outside 0..{count - 1}")
    return BidAllocation(index, starts, product_of, groups, quantities, assets, parks)


def _schedule(value: Any, field: str) -> Schedule:
    data = _object(
        value, field,
        {"index", "asset_power_kw", "park_power_kw", "soc_kwh", "objective", "stats",
         "fallback", "errors"},
    )
    index = _index(data["index"], f"{field}.index")
    return Schedule(
        index,
        _frame(data["asset_power_kw"], f"{field}.asset_power_kw", index),
        _frame(data["park_power_kw"], f"{field}.park_power_kw", index),
        _frame(data["soc_kwh"], f"{field}.soc_kwh", index),
        _float(data["objective"], f"{field}.objective"),
        _stats(data["stats"], f"{field}.stats"),
        fallback=_bool(data["fallback"], f"{field}.fallback"),
        errors=_errors(data["errors"], f"{field}.errors"),
    )


def plan_from_json(text: str | bytes) -> DayAheadResult:
    """Parse a stored plan strictly; :class:`PlanFormatError` names what is wrong."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PlanFormatError("(document)", "is not UTF-8 text (a pickle or binary?)") from exc
    try:
        raw = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise PlanFormatError("(document)", f"is not JSON ({exc.msg} at char {exc.pos})") from exc
    if not isinstance(raw, dict):
        raise PlanFormatError("(document)", f"expected an object, got {type(raw).__name__}")
    version = raw.get("schema_version")
    if version != PLAN_SCHEMA_VERSION:
        raise PlanFormatError(
            "schema_version", f"{version!r} is not supported; this vpp reads {PLAN_SCHEMA_VERSION}"
        )
    data = _object(
        raw, "(document)",
        {"schema_version", "bid", "fallback", "errors", "stats", "allocation", "expected_schedule"},
    )
    try:
        bid = bid_from_json(data["bid"])
    except WireError as exc:
        raise PlanFormatError("bid", str(exc)) from exc
    for i, curve in enumerate(bid.curves):
        for k, point in enumerate(curve.points):
            if not (math.isfinite(point.price_per_mwh) and math.isfinite(point.quantity_mw)):
                raise PlanFormatError(f"bid.curves[{i}].points[{k}]", "is not finite")
    return DayAheadResult(
        bid,
        _allocation(data["allocation"], "allocation"),
        _schedule(data["expected_schedule"], "expected_schedule"),
        _stats(data["stats"], "stats"),
        fallback=_bool(data["fallback"], "fallback"),
        errors=_errors(data["errors"], "errors"),
    )
