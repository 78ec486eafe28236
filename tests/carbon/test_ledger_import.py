"""The certificate file importer: the whole file is checked, every bad row is one line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.carbon.conftest import EXAMPLE
from vpp.carbon import Instrument, read_certificates
from vpp.errors import ConfigError

HEADER = (
    "id,kind,vintage,quantity,price_per_unit,currency,source,park_id,delivery_start,delivery_end\n"
)


def write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "certs.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def issues(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        read_certificates(path)
    return [str(i) for i in caught.value.issues]


def test_the_shipped_example_reads_and_says_it_is_illustrative() -> None:
    instruments = read_certificates(EXAMPLE)
    assert {i.kind for i in instruments} == {"gec", "green_power", "ccer"}
    assert all("not a real" in i.source for i in instruments)
    assert "ILLUSTRATIVE ONLY" in EXAMPLE.read_text(encoding="utf-8")
    ccer = [i.price_per_unit for i in instruments if i.kind == "ccer"]
    assert all(60 <= p <= 80 for p in ccer)  # 2025 CCER prices, CNY/t
    gec = [i.price_per_unit for i in instruments if i.kind == "gec"]
    assert all(0 < p < 10 for p in gec)  # a few CNY per certificate in 2025


def test_a_row_reads_into_an_instrument_with_aware_utc_hours(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "G1,gec,2025,24,4.0,CNY,registry X,jinan-north,2025-05-10T00:00+08:00,2025-05-11T00:00+08:00\n"
        "C1,ccer,2024,10.5,70,CNY,seller Y,,,\n",
    )
    g1, c1 = read_certificates(path)
    assert g1 == Instrument(
        id="G1",
        kind="gec",
        vintage=2025,
        quantity=24,
        price_per_unit=4.0,
        currency="CNY",
        source="registry X",
        park_id="jinan-north",
        delivery_start=dt.datetime(2025, 5, 9, 16, tzinfo=dt.UTC),
        delivery_end=dt.datetime(2025, 5, 10, 16, tzinfo=dt.UTC),
    )
    assert g1.hourly
    assert c1.park_id is None
    assert c1.unit == "tCO2"
    assert not c1.hourly


def test_every_bad_row_is_one_line_naming_file_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# a comment line keeps the numbering\n"  # line 2
        "G1,gec,2025,10,4,CNY,ok,,,\n"  # line 3: fine
        "G2,gecc,2025,10,4,CNY,ok,,,\n"  # 4: kind
        "G3,gec,1999,10,4,CNY,ok,,,\n"  # 5: vintage
        "G4,gec,2025,-1,4,CNY,ok,,,\n"  # 6: quantity
        "G5,gec,2025,1.5,4,CNY,ok,,,\n"  # 7: whole certificates
        "G6,gec,2025,10,-4,CNY,ok,,,\n"  # 8: price
        "G7,gec,2025,10,4,yuan,ok,,,\n"  # 9: currency
        "G8,gec,2025,10,4,CNY,,,,\n"  # 10: source
        "G9,gec,2025,10,4,CNY,ok,,2025-05-10T00:00,2025-05-11T00:00+08:00\n"  # 11: naive
        "G10,gec,2025,10,4,CNY,ok,,2025-05-10T00:00+08:00,\n"  # 12: one bound only
        "G11,gec,2025,10,4,CNY,ok,,2025-05-11T00:00+08:00,2025-05-10T00:00+08:00\n"  # 13: order
        "C1,ccer,2025,10,70,CNY,ok,,2025-05-10T00:00+08:00,2025-05-11T00:00+08:00\n"  # 14: ccer hours
        "G1,gec,2025,10,4,CNY,ok,,,\n"  # 15: duplicate
        "G12,gec,2025,10,4,CNY,ok,,not-a-time,2025-05-11T00:00+08:00\n"  # 16: unparseable
        "G13,gec,2024,10,4,CNY,ok,,2025-05-10T00:00+08:00,2025-05-11T00:00+08:00\n"  # 17: vintage/hours
        "G14,gec,2025,ten,4,CNY,ok,,,\n",  # 18: not a number
    )
    name = str(path)
    assert issues(path) == [
        f"{name}:4: kind = 'gecc': one of gec, green_power, ccer",
        f"{name}:5: vintage = '1999': a year 2000..2100",
        f"{name}:6: quantity = '-1': must be > 0 [MWh]",
        f"{name}:7: quantity = '1.5': whole certificates only (1 GEC = 1 MWh)",
        f"{name}:8: price_per_unit = '-4': must be >= 0 [currency/MWh]",
        f"{name}:9: currency = 'yuan': an ISO 4217 code in capitals, e.g. CNY",
        f"{name}:10: source = '': empty; where the instrument comes from (registry, contract, seller)",
        f"{name}:11: delivery_start = '2025-05-10T00:00': naive (no UTC offset); "
        "ISO 8601 with a UTC offset, e.g. 2025-03-01T00:00+08:00",
        f"{name}:12: delivery_end = '': give both delivery_start and delivery_end "
        "(hourly matching), or neither (annual)",
        f"{name}:13: delivery_end = '2025-05-10T00:00+08:00': must be after delivery_start "
        "(2025-05-11T00:00+08:00)",
        f"{name}:14: delivery_start = '2025-05-10T00:00+08:00': an offset (ccer) has no "
        "delivery hours; leave empty",
        f"{name}:15: id = 'G1': duplicate; already on line 3, every id once",
        f"{name}:16: delivery_start = 'not-a-time': not a timestamp; "
        "ISO 8601 with a UTC offset, e.g. 2025-03-01T00:00+08:00",
        f"{name}:17: delivery_start = '2025-05-10T00:00+08:00': lies outside vintage 2024; "
        "the production year must match",
        f"{name}:18: quantity = 'ten': not a number; a number > 0 [MWh]",
    ]


def test_header_problems_are_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "G1,gec,2025,10,CNY,ok,x\n",
        header="id,kind,vintage,quantity,currency,source,colour\n",
    )
    name = str(path)
    assert issues(path) == [
        f"{name}:1: header = 'id,kind,vintage,quantity,currency,source,colour': lacks column(s) "
        "price_per_unit; required: id, kind, vintage, quantity, price_per_unit, currency, source",
        f"{name}:1: header = 'id,kind,vintage,quantity,currency,source,colour': unknown column(s) "
        "colour; allowed: id, kind, vintage, quantity, price_per_unit, currency, source, park_id, "
        "delivery_start, delivery_end",
    ]


def test_optional_columns_may_be_left_out(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "C1,ccer,2024,5,70,CNY,ok\n",
        header="id,kind,vintage,quantity,price_per_unit,currency,source\n",
    )
    (c1,) = read_certificates(path)
    assert c1.park_id is None


def test_too_many_cells_and_empty_files(tmp_path: Path) -> None:
    path = write(tmp_path, "G1,gec,2025,10,4,CNY,ok,,,,extra\n")
    assert issues(path) == [
        f"{path}:2: 11 cells but the header has 10 columns; quote a value that holds a comma"
    ]
    assert issues(write(tmp_path, "")) == [
        f"{tmp_path / 'certs.csv'}: no instruments; one row per certificate, contract or offset after the header"
    ]
    assert issues(write(tmp_path, "", header="# only a comment\n"))[0].endswith(
        "no header row; the first line names the columns: id, kind, vintage, quantity, "
        "price_per_unit, currency, source, park_id, delivery_start, delivery_end"
    )


def test_a_spreadsheet_bom_is_accepted_and_bad_encoding_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(
        ("\ufeff" + HEADER + "G1,gec,2025,10,4,CNY,中国绿证 example,,,\n").encode("utf-8")
    )
    assert read_certificates(path)[0].source == "中国绿证 example"
    path.write_bytes((HEADER + "G1,gec,2025,10,4,CNY,中国,,,\n").encode("gbk"))
    (line,) = issues(path)
    assert line.startswith(f"{path}: not UTF-8 text")
    assert line.endswith("save the file as UTF-8 CSV")
