"""Carbon accounting: scope 2 both ways by hand, hourly vs annual matching, scope 1, the indicator."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpp.carbon.accounting import (
    ELECTRICITY_TCE_PER_MWH,
    CarbonBooks,
    GridFactors,
    ParkFlows,
    account_park,
    grid_factors,
    indicator_threshold,
    match_instruments,
)
from vpp.carbon.factors import load_factors
from vpp.carbon.instruments import Instrument
from vpp.config import load_config
from vpp.config.models import FuelSpec
from vpp.errors import ConfigError, InputError

REPO = Path(__file__).resolve().parents[2]
CARBON = REPO / "config" / "carbon"
TZ = "Asia/Shanghai"
# One local day, 2025-05-12, in hours (00:00 local = 16:00 UTC the day before).
DAY = pd.date_range("2025-05-11T16:00Z", periods=24, freq="h")


def _grid(intensity: np.ndarray, annual: float = 0.5366, residual: float = 0.5856) -> GridFactors:
    n = len(intensity)
    return GridFactors(
        np.asarray(intensity, float), np.ones(n, bool), np.full(n, annual), np.full(n, residual)
    )


def _day_flows() -> ParkFlows:
    """Import 1 MWh an hour at night (00-12 local), export 0.5 MWh an hour from PV after."""
    imports = np.r_[np.ones(12), np.zeros(12)]
    exports = np.r_[np.zeros(12), np.full(12, 0.5)]
    pv = np.r_[np.zeros(12), np.full(12, 10 / 12)]
    return ParkFlows("p", DAY, imports, exports, pv)


def test_scope2_of_one_day_both_ways_by_hand() -> None:
    intensity = np.r_[np.full(6, 0.70), np.full(6, 0.60), np.full(12, 0.55)]
    books = account_park(_day_flows(), _grid(intensity), days=1, timezone=TZ)
    # location-based, interval intensity: 6 h x 1 MWh x 0.70 + 6 h x 1 MWh x 0.60 = 7.8 t
    assert books.location_tco2 == pytest.approx(6 * 0.70 + 6 * 0.60)
    # location-based, annual: 12 MWh x 0.5366 = 6.4392 t (export after noon changes nothing)
    assert books.location_annual_tco2 == pytest.approx(12 * 0.5366)
    # market-based, no instruments: 12 MWh x 0.5856 = 7.0272 t
    assert books.market_tco2 == pytest.approx(12 * 0.5856)
    # energy: (12 - 6 + 10) MWh x 0.1229 tce/MWh; clean: (10 - 6) MWh of PV kept on site
    assert books.energy_tce == pytest.approx(16 * 0.1229)
    assert books.clean_energy_share == pytest.approx(4 / 16)
    assert books.intensity_tco2_per_tce == pytest.approx(12 * 0.5856 / (16 * 0.1229))
    assert books.intensity_basis == "market"
    assert books.threshold_tco2_per_tce is None
    assert "no threshold" in books.threshold_note
    assert books.intervals["location_interval_tco2"].iloc[0] == pytest.approx(0.70)


def test_export_does_not_reduce_scope2() -> None:
    flows = _day_flows()
    no_export = ParkFlows("p", DAY, flows.import_mwh, np.zeros(24), np.zeros(24))
    grid = _grid(np.full(24, 0.6))
    with_export = account_park(flows, grid, days=1)
    without = account_park(no_export, grid, days=1)
    assert with_export.location_tco2 == without.location_tco2
    assert with_export.market_tco2 == without.market_tco2


def test_the_shipped_factors_of_one_day(tmp_path: Path) -> None:
    """grid_factors on 2025-05-12 with config/carbon/cn.toml and the day's fundamentals."""
    cn = load_factors(CARBON / "cn.toml")
    fundamentals = pd.DataFrame(
        {
            "load_forecast_mw": 10_000.0,
            "renewable_forecast_mw": 1_000.0,
            "hydro_forecast_mw": 1_500.0,
            "tie_line_forecast_mw": 2_000.0,
        },
        index=DAY,
    )
    grid = grid_factors(DAY, TZ, cn, fundamentals=fundamentals)
    assert (grid.annual == 0.5366).all()
    assert (grid.residual == 0.5856).all()
    assert grid.estimated.all()
    assert grid.intensity == pytest.approx(np.full(24, (1 - 2_500 / 10_000) * 0.8325))
    without = grid_factors(DAY, TZ, cn)  # no fundamentals: the annual factor
    assert (without.intensity == 0.5366).all()
    assert not without.estimated.any()
    north = grid_factors(DAY, TZ, cn, area="North China")
    assert (north.annual == 0.6776).all()


def test_market_based_is_refused_where_no_residual_factor_exists() -> None:
    de = load_factors(CARBON / "de.toml")
    index = pd.date_range("2021-06-01T00:00Z", periods=24, freq="h")
    grid = grid_factors(index, "Europe/Berlin", de)
    flows = ParkFlows("p", index, np.ones(24), np.zeros(24), np.zeros(24))
    books = account_park(flows, grid, days=1, timezone="Europe/Berlin")
    assert books.market_tco2 is None
    assert "AIB" in (books.market_reason or "")
    assert books.location_annual_tco2 == pytest.approx(24 * 0.366)
    assert books.location_tco2 == pytest.approx(24 * 0.366)  # no fundamentals: annual
    assert books.intensity_basis == "location"
    summary = CarbonBooks((books,)).summary()
    assert summary["emissions_market_tco2"] is None
    assert "AIB" in str(summary["emissions_market_reason"])
    ercot = grid_factors(index, "America/Chicago", load_factors(CARBON / "us-ercot.toml"))
    refused = account_park(flows, ercot, days=1)
    assert refused.location_tco2 is None
    assert refused.market_tco2 is None
    assert "eGRID" in (refused.location_reason or "")
    assert CarbonBooks((refused,)).summary()["carbon_intensity_tco2_per_tce"] is None
    none = grid_factors(index, "UTC", None)
    assert "carbon_region" in account_park(flows, none, days=1).market_reason  # type: ignore[operator]


def _certificate(id_: str, mwh: float, hour: int | None, vintage: int = 2025) -> Instrument:
    if hour is None:
        return Instrument(id_, "gec", vintage, mwh)
    start = DAY[hour].to_pydatetime()
    return Instrument(
        id_, "gec", vintage, mwh, delivery_start=start, delivery_end=start + dt.timedelta(hours=1)
    )


def test_hourly_matching_gives_less_reduction_than_annual_by_hand() -> None:
    """Import 2 MWh in hour 0 and 3 MWh in hour 3; certificates: A 2 MWh produced in hour 1
    (no import then), B 1 MWh in hour 0, C 1 MWh without hours (vintage 2025)."""
    imports = np.zeros(24)
    imports[0], imports[3] = 2.0, 3.0
    certificates = [_certificate("A", 2, 1), _certificate("B", 1, 0), _certificate("C", 1, None)]
    hourly = match_instruments(DAY, imports, certificates, "hourly", timezone=TZ)
    annual = match_instruments(DAY, imports, certificates, "annual", timezone=TZ)
    # hourly: only B covers (1 MWh of hour 0); A's hour had no import; C has no hours.
    assert hourly.matched_mwh.sum() == pytest.approx(1.0)
    assert hourly.matched_mwh[0] == pytest.approx(1.0)
    assert hourly.unused_mwh == {"A": 2.0, "C": 1.0}
    # annual: all 4 MWh of vintage 2025 cover import in time order: A -> hour 0, B + C -> hour 3.
    assert annual.matched_mwh[0] == pytest.approx(2.0)
    assert annual.matched_mwh[3] == pytest.approx(2.0)
    assert annual.used_mwh == {"A": 2.0, "B": 1.0, "C": 1.0}
    flows = ParkFlows("p", DAY, imports, np.zeros(24), np.zeros(24))
    grid = _grid(np.full(24, 0.6))
    market_hourly = account_park(flows, grid, instruments=certificates, matching="hourly")
    market_annual = account_park(flows, grid, instruments=certificates, matching="annual")
    assert market_hourly.market_tco2 == pytest.approx((5 - 1) * 0.5856)
    assert market_annual.market_tco2 == pytest.approx((5 - 4) * 0.5856)
    assert market_annual.clean_energy_share == pytest.approx(4 / 5)
    # A certificate of another vintage covers nothing under the annual rule.
    old = match_instruments(DAY, imports, [_certificate("D", 3, None, 2024)], "annual", timezone=TZ)
    assert old.matched_mwh.sum() == 0.0


def test_hourly_matching_uses_the_window_that_closes_first() -> None:
    imports = np.zeros(24)
    imports[0] = imports[1] = 1.0
    start = DAY[0].to_pydatetime()
    wide = Instrument(
        "X",
        "green_power",
        2025,
        1.0,
        delivery_start=start,
        delivery_end=start + dt.timedelta(hours=2),
    )
    narrow = _certificate("Y", 1.0, 0)
    result = match_instruments(DAY, imports, [wide, narrow], "hourly")
    assert result.matched_mwh[:2] == pytest.approx([1.0, 1.0])  # Y in hour 0, X in hour 1


def test_matching_refuses_bad_instruments_and_ignores_offsets() -> None:
    imports = np.ones(24)
    with pytest.raises(InputError, match="given twice"):
        match_instruments(DAY, imports, [_certificate("A", 1, 0), _certificate("A", 1, 1)])
    other = Instrument("Z", "gec", 2025, 1.0, park_id="elsewhere")
    with pytest.raises(InputError, match="belongs to park 'elsewhere'"):
        match_instruments(DAY, imports, [other], park_id="p")
    with pytest.raises(InputError, match="matching = 'monthly'"):
        match_instruments(DAY, imports, [], "monthly")
    offset = Instrument("O", "ccer", 2025, 100.0)
    assert match_instruments(DAY, imports, [offset], "annual", timezone=TZ).matched_mwh.sum() == 0


def test_scope1_from_declared_fuels_enters_the_indicator() -> None:
    gas = FuelSpec(
        name="natural gas (boiler)",
        unit="m3",
        quantity_per_day=100.0,
        emission_factor_tco2_per_unit=0.002,
        tce_per_unit=0.0012,
        source="test values",
    )
    flows = ParkFlows("p", DAY, np.ones(24), np.zeros(24), np.zeros(24))
    books = account_park(flows, _grid(np.full(24, 0.6)), fuels=[gas], days=2)
    assert books.scope1_tco2 == pytest.approx(2 * 100 * 0.002)
    assert books.energy_tce == pytest.approx(24 * ELECTRICITY_TCE_PER_MWH + 2 * 100 * 0.0012)
    expected = (0.4 + 24 * 0.5856) / books.energy_tce
    assert books.intensity_tco2_per_tce == pytest.approx(expected)
    yearly = gas.model_copy(update={"quantity_per_day": None, "quantity_per_year": 36_500.0})
    assert yearly.quantity(2) == pytest.approx(200.0)


@pytest.mark.parametrize(
    ("tce", "limit"),
    [(150_000, None), (200_000, 0.20), (999_999, 0.20), (1_000_000, 0.30), (5e6, 0.30)],
)
def test_the_notice_threshold_by_park_size(tce: float, limit: float | None) -> None:
    assert indicator_threshold(tce)[0] == limit


@settings(max_examples=60, deadline=None)
@given(
    imports=st.lists(st.floats(0, 50, allow_nan=False), min_size=24, max_size=24),
    certificates=st.lists(
        st.tuples(st.floats(0.01, 40), st.integers(0, 23), st.booleans()), max_size=6
    ),
    residual=st.floats(0.01, 1.5),
    rule=st.sampled_from(["hourly", "annual"]),
)
def test_market_based_is_never_negative_nor_above_import_at_the_residual(
    imports: list[float],
    certificates: list[tuple[float, int, bool]],
    residual: float,
    rule: str,
) -> None:
    values = np.asarray(imports)
    instruments = [
        _certificate(f"c{i}", mwh, hour if hourly else None)
        for i, (mwh, hour, hourly) in enumerate(certificates)
    ]
    flows = ParkFlows("p", DAY, values, np.zeros(24), np.zeros(24))
    grid = _grid(np.full(24, 0.6), residual=residual)
    books = account_park(flows, grid, instruments=instruments, matching=rule, timezone=TZ)
    ceiling = float(values.sum() * residual)
    assert books.market_tco2 is not None
    assert 0.0 <= books.market_tco2 <= ceiling + 1e-9
    matched = books.intervals["matched_mwh"].to_numpy()
    assert (matched >= -1e-12).all()
    assert (matched <= values + 1e-9).all()
    assert matched.sum() <= sum(mwh for mwh, _, _ in certificates) + 1e-9
    if not instruments:
        assert books.market_tco2 == pytest.approx(ceiling)


def test_bad_flows_are_refused() -> None:
    with pytest.raises(InputError, match="import_mwh must be finite and >= 0"):
        ParkFlows("p", DAY, np.full(24, -1.0), np.zeros(24), np.zeros(24))
    with pytest.raises(InputError, match="3 values for 24 intervals"):
        ParkFlows("p", DAY, np.zeros(3), np.zeros(24), np.zeros(24))
    flows = ParkFlows.from_net("p", DAY, np.r_[np.full(12, -1000.0), np.full(12, 500.0)])
    assert flows.import_mwh.sum() == pytest.approx(12)
    assert flows.export_mwh.sum() == pytest.approx(6)


FUEL = """
[[fuels]]
name = "natural gas (boiler)"
unit = "m3"
quantity_per_year = 120000
emission_factor_tco2_per_unit = 0.0021622
tce_per_unit = 0.0012143
source = "test values"
"""


def test_a_park_declares_its_fuels(config_copy: Path) -> None:
    park = config_copy / "parks" / "jinan-north.toml"
    park.write_text(park.read_text(encoding="utf-8") + FUEL, encoding="utf-8")
    fuels = load_config(config_copy).parks["jinan-north"].fuels
    assert [f.name for f in fuels] == ["natural gas (boiler)"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            ("quantity_per_year = 120000", "quantity_per_year = 1\nquantity_per_day = 1"),
            "fuels[0]",
            "exactly one of quantity_per_year and quantity_per_day",
        ),
        (("quantity_per_year = 120000\n", ""), "fuels[0]", "exactly one of"),
        (
            ("quantity_per_year = 120000", "quantity_per_year = -5"),
            "fuels[0].quantity_per_year",
            "must be > 0",
        ),
        (
            ("emission_factor_tco2_per_unit = 0.0021622", "emission_factor_tco2_per_unit = -1"),
            "fuels[0].emission_factor_tco2_per_unit",
            "must be >= 0",
        ),
        (
            ("tce_per_unit = 0.0012143", 'tce_per_unit = "1.2"'),
            "fuels[0].tce_per_unit",
            "without quotes",
        ),
        (('unit = "m3"', 'unit = "m3"\nkind = "gas"'), "fuels[0].kind", "unknown key"),
        (('source = "test values"\n', ""), "fuels[0].source", "is required"),
        (
            ("quantity_per_year = 120000", "quantity_per_year = inf"),
            "fuels[0].quantity_per_year",
            "finite",
        ),
    ],
)
def test_bad_fuels_are_one_line_naming_file_field_and_value(
    config_copy: Path, change: tuple[str, str], field: str, message: str
) -> None:
    park = config_copy / "parks" / "jinan-north.toml"
    park.write_text(park.read_text(encoding="utf-8") + FUEL.replace(*change), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config_copy)
    text = str(caught.value)
    assert f"{park}: {field} = " in text, text
    assert message in text, text
    assert len(text.splitlines()) == 1, text


def test_two_fuels_with_one_name_are_refused(config_copy: Path) -> None:
    park = config_copy / "parks" / "jinan-north.toml"
    park.write_text(park.read_text(encoding="utf-8") + FUEL + FUEL, encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"fuels\[1\]\.name = 'natural gas \(boiler\)': duplicate"
    ):
        load_config(config_copy)
