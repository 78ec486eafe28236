"""Emission factors as versioned data: the shipped region files, versioning by date, bad files."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vpp.carbon.factors import FactorSet, load_factors
from vpp.cli import app
from vpp.config import load_carbon_region, load_config
from vpp.errors import ConfigError, InputError

REPO = Path(__file__).resolve().parents[2]
CARBON = REPO / "config" / "carbon"


def test_every_shipped_market_names_a_loaded_region() -> None:
    config = load_config(REPO / "config")
    assert set(config.carbon) == {"cn", "de", "dk", "us-caiso", "us-ercot"}
    for market in config.markets.values():
        assert market.carbon_region in config.carbon, market.id


def test_china_holds_every_row_of_the_shared_csv(shared_data: Path) -> None:
    factors = load_factors(CARBON / "cn.toml")
    scope_of = {
        "national_average": "national_average",
        "national_excluding_market_traded_non_fossil": "residual",
        "national_fossil_only": "fossil_only",
        "regional_average": "regional_average",
        "provincial_average": "provincial_average",
    }
    with (shared_data / "carbon" / "cn_grid_emission_factors.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(factors.factors) == 17
    shipped = {(x.scope, x.area, x.year): x.tco2_per_mwh for x in factors.factors}
    for row in rows:
        key = (scope_of[row["scope"]], row["region"], int(row["year"]))
        assert shipped[key] == pytest.approx(float(row["factor_tco2_per_mwh"]), abs=0), key
    assert all(x.needs_verification for x in factors.factors)  # secondary sources: (verify)


def test_the_factor_in_force_is_chosen_by_effective_date() -> None:
    cn = load_factors(CARBON / "cn.toml")
    # Before the 2022 factors were announced (2024-12-20) nothing is in force ...
    assert cn.factor("national_average", dt.date(2024, 12, 19)) is None
    assert "in force from 2024-12-20" in cn.why_missing("national_average", dt.date(2024, 12, 19))
    # ... from then on the 2022 set, during the whole shipped price range (May-June 2025) ...
    for day in (dt.date(2024, 12, 20), dt.date(2025, 5, 12), dt.date(2026, 1, 14)):
        assert cn.require("national_average", day).value == 0.5366
        assert cn.require("residual", day).value == 0.5856
        assert cn.require("fossil_only", day).value == 0.8325
    # ... and the 2023 set only once it was announced.
    later = dt.date(2026, 1, 15)
    assert (cn.require("national_average", later).year, cn.require("residual", later).value) == (
        2023,
        0.6096,
    )
    assert cn.require("fossil_only", later).value == 0.8273
    assert cn.require("regional_average", later, "North China").value == 0.6361
    assert cn.require("regional_average", dt.date(2025, 6, 1), "North China").value == 0.6776
    assert cn.factor("provincial_average", later, "Shandong") is None  # missing, not zero


def test_units_convert_on_entry_and_missing_scopes_are_refused_with_their_reason() -> None:
    de = load_factors(CARBON / "de.toml")
    assert de.require("national_average", dt.date(2021, 6, 1)).tco2_per_mwh == pytest.approx(0.366)
    assert de.factor("national_average", dt.date(2020, 1, 1)) is None
    with pytest.raises(InputError, match=r"de\.toml: no residual factor .*AIB"):
        de.require("residual", dt.date(2021, 6, 1))
    ercot = load_factors(CARBON / "us-ercot.toml")
    with pytest.raises(InputError, match="eGRID"):
        ercot.require("national_average", dt.date(2022, 6, 1))


GOOD = """region = "xx"
name = "test region"
country = "Testland"

[[factors]]
scope = "national_average"
area = "Testland"
year = 2022
value = 0.5
unit = "tCO2/MWh"
source = "a test (verify)"
effective_date = 2023-06-01
"""


def _write(tmp_path: Path, text: str, name: str = "xx.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_loads_and_names_its_file(tmp_path: Path) -> None:
    factors = load_carbon_region(_write(tmp_path, GOOD))
    assert isinstance(factors, FactorSet)
    assert "xx.toml" in factors.why_missing("residual", dt.date(2024, 1, 1))


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (('unit = "tCO2/MWh"', 'unit = "t/MWh"'), "factors[0].unit", "must be one of tCO2/MWh"),
        (("value = 0.5", "value = 500"), "factors[0]", "above 1.5"),
        (("value = 0.5", "value = -0.1"), "factors[0].value", "must be >= 0"),
        (("value = 0.5", 'value = "0.5"'), "factors[0].value", "without quotes"),
        (
            ("effective_date = 2023-06-01", "effective_date = 2022-06-01"),
            "factors[0]",
            "published after the year ends",
        ),
        (('scope = "national_average"', 'scope = "average"'), "factors[0].scope", "must be one of"),
        (('area = "Testland"', 'area = "North"'), "", "is for the country"),
        (('region = "xx"', 'region = "yy"'), "region", "must be the file's name"),
        (('name = "test region"', 'name = "t"\ncolour = "red"'), "colour", "unknown key"),
        (("year = 2022", "year = 1800"), "factors[0].year", "must be >= 1990"),
    ],
)
def test_bad_factor_files_are_one_line_naming_file_field_and_value(
    tmp_path: Path, change: tuple[str, str], field: str, message: str
) -> None:
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_carbon_region(path)
    text = str(caught.value)
    assert str(path) in text, text
    assert message in text, text
    assert len(text.splitlines()) == 1, text
    if field:
        assert f": {field} = " in text, text


def test_a_duplicate_and_a_missing_scope_given_twice_are_refused(tmp_path: Path) -> None:
    twice = GOOD + GOOD.split("\n\n", 1)[1]
    with pytest.raises(ConfigError, match="a second national_average factor for Testland 2022"):
        load_carbon_region(_write(tmp_path, twice))
    both = GOOD.replace(
        'country = "Testland"\n',
        'country = "Testland"\n[missing]\nnational_average = "not found"\n',
    )
    with pytest.raises(ConfigError, match="both given and listed as missing"):
        load_carbon_region(_write(tmp_path, both))
    unknown = GOOD.replace(
        'country = "Testland"\n', 'country = "Testland"\n[missing]\nmarginal = "not found"\n'
    )
    with pytest.raises(ConfigError, match="unknown scope 'marginal'"):
        load_carbon_region(_write(tmp_path, unknown))
    regional = GOOD.replace('scope = "national_average"', 'scope = "regional_average"')
    with pytest.raises(ConfigError, match="needs a sub-national area"):
        load_carbon_region(_write(tmp_path, regional))


def test_a_market_naming_an_absent_region_or_area_is_refused(config_copy: Path) -> None:
    market = config_copy / "markets" / "cn-province-a.toml"
    text = market.read_text(encoding="utf-8")
    market.write_text(text.replace('carbon_region = "cn"', 'carbon_region = "cn-north"'), "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config_copy)
    assert f"{market}: carbon_region = 'cn-north': no carbon region file" in str(caught.value)
    market.write_text(
        text.replace('carbon_region = "cn"', 'carbon_region = "cn"\ncarbon_area = "Shandong"'),
        "utf-8",
    )
    with pytest.raises(ConfigError, match=r"carbon_area = 'Shandong': not an area of .*cn\.toml"):
        load_config(config_copy)
    market.write_text(
        text.replace('carbon_region = "cn"', 'carbon_region = "cn"\ncarbon_area = "North China"'),
        "utf-8",
    )
    assert load_config(config_copy).markets["cn-province-a"].carbon_area == "North China"


def test_vpp_validate_checks_carbon_files_in_one_line(config_copy: Path) -> None:
    bad = config_copy / "carbon" / "dk.toml"
    bad.write_text(bad.read_text(encoding="utf-8").replace("value = 192", "value = 1920"), "utf-8")
    result = CliRunner().invoke(app, ["validate", str(config_copy)])
    assert result.exit_code == 1
    assert "dk.toml: factors[0]" in result.output
    assert "above 1.5" in result.output
    assert "Traceback" not in result.output
    single = CliRunner().invoke(app, ["validate", str(bad)])
    assert single.exit_code == 1
    assert "above 1.5" in single.output
    shutil.rmtree(config_copy / "carbon")
    missing = CliRunner().invoke(app, ["validate", str(config_copy)])
    assert missing.exit_code == 1
    assert "no carbon region file" in missing.output
