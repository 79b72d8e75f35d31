"""Broker files to canonical fills (pure parsing, no database): each format's fixture, and
each known trap of broker exports."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from buddy.trades.fills import FILL_COLUMNS, FillsFileError, fill_errors
from buddy.trades.importers import FORMATS, ParsedFills, parse_file
from tests.trades.fills_support import FIXTURES, GENERIC_MAP, MT5_TZ, sample_tickers

IB_HEADER = ('"ClientAccountID","CurrencyPrimary","AssetClass","Symbol","Buy/Sell","Quantity",'
             '"TradePrice","IBCommission","Taxes","OpenCloseIndicator","DateTime","IBExecID"')


@pytest.fixture(scope="module")
def tickers() -> pd.DataFrame:
    return sample_tickers()


def parse(name: str, fmt: str, tickers: pd.DataFrame, **kw: object) -> ParsedFills:
    return parse_file(FIXTURES / name, user_id="u1", fmt=fmt, instruments=tickers, **kw)


def write(tmp_path: Path, text: str, name: str = "file.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def refused(excinfo: pytest.ExceptionInfo[FillsFileError]) -> list[tuple[str, str]]:
    return [(e.field, e.rule) for e in excinfo.value.errors]


# ---------------------------------------------------------------------------- every format
@pytest.mark.parametrize(("name", "fmt", "kw", "n"), [
    ("ibkr_flex_trades.csv", "ibkr-csv", {}, 5),
    ("ibkr_flex_trades.xml", "ibkr-xml", {}, 5),
    ("thinkorswim_statement.csv", "thinkorswim", {}, 5),
    ("tradovate_fills.csv", "tradovate", {}, 3),
    ("mt5_deals_report.html", "mt5", {"tz": MT5_TZ}, 3),
    ("mt5_deals.csv", "mt5", {"tz": MT5_TZ}, 3),
    ("generic_fills.csv", "generic", {"column_map": GENERIC_MAP}, 5),
])
def test_every_fixture_reads_into_valid_canonical_fills(tickers, name, fmt, kw, n) -> None:
    fills = parse(name, fmt, tickers, **kw).fills
    assert list(fills.columns) == list(FILL_COLUMNS)
    assert len(fills) == n
    assert fill_errors(fills) == []
    assert str(fills["ts"].dtype) == "datetime64[us, UTC]"
    assert fills["exec_id"].is_unique
    assert (fills["user_id"] == "u1").all()
    assert set(fills["source"]) == {fmt}


def test_every_format_is_registered() -> None:
    assert set(FORMATS) == {"ibkr-csv", "ibkr-xml", "thinkorswim", "tradovate", "mt5",
                            "generic"}


def test_ibkr_xml_read_with_ibflex_equals_the_csv(tickers) -> None:
    same = ["account", "symbol", "ts", "side", "qty", "price", "commission", "fees",
            "currency", "exec_id", "open_close", "order_id", "venue"]
    xml = parse("ibkr_flex_trades.xml", "ibkr-xml", tickers)
    csv = parse("ibkr_flex_trades.csv", "ibkr-csv", tickers)
    pd.testing.assert_frame_equal(xml.fills[same], csv.fills[same])
    assert parse("ibkr_flex_trades.xml", "ibkr", tickers).fills["source"].iloc[0] == "ibkr-xml"


def test_ibkr_xml_unknown_attributes_are_noted_not_fatal(tickers) -> None:
    problems = parse("ibkr_flex_trades.xml", "ibkr-xml", tickers).problems
    ignored = [p for p in problems if p.column == "brandNewIbAttribute2031"]
    assert len(ignored) == 1 and "ignored" in ignored[0].rule and ignored[0].row == 1


# ---------------------------------------------------------------------------- IBKR traps
def test_ibkr_times_are_exchange_local_converted_with_the_tickers_zone(tickers) -> None:
    fills = parse("ibkr_flex_trades.csv", "ibkr-csv", tickers).fills.set_index("exec_id")
    # 09:30:05 New York in June is EDT (UTC-4)
    assert fills.loc["0000e0d5.4fc8a1b2.01.01", "ts"] == utc("2012-06-01 13:30:05")


def test_ibkr_winter_time_and_tz_override(tickers, tmp_path) -> None:
    path = write(tmp_path, IB_HEADER + '\n"U1","USD","STK","AAPL","BUY","10","400","-1","0",'
                 '"O","20120110;093000","E1"\n')
    winter = parse_file(path, user_id="u1", fmt="ibkr-csv", instruments=tickers).fills
    assert winter["ts"].iloc[0] == utc("2012-01-10 14:30:00")  # EST, UTC-5
    london = parse_file(path, user_id="u1", fmt="ibkr-csv", instruments=tickers,
                        tz="Europe/London").fills
    assert london["ts"].iloc[0] == utc("2012-01-10 09:30:00")


def test_ibkr_symbol_without_a_known_zone_is_refused_unless_tz_is_given(tickers,
                                                                         tmp_path) -> None:
    path = write(tmp_path, IB_HEADER + '\n"U1","USD","STK","NVDA","BUY","10","12.5","-1","0",'
                 '"O","20120110;093000","E1"\n')
    with pytest.raises(FillsFileError) as excinfo:
        parse_file(path, user_id="u1", fmt="ibkr-csv", instruments=tickers)
    [(where, rule)] = refused(excinfo)
    assert where == "row 1 (line 2), DateTime" and "not in tickers" in rule and "--tz" in rule
    fills = parse_file(path, user_id="u1", fmt="ibkr-csv", instruments=tickers,
                       tz="America/New_York").fills
    assert fills["symbol"].tolist() == ["NVDA"]


def test_ibkr_close_and_reverse_indicator_is_kept(tickers) -> None:
    fills = parse("ibkr_flex_trades.csv", "ibkr-csv", tickers).fills
    reversal = fills[fills["open_close"] == "C;O"]
    assert len(reversal) == 1
    assert reversal[["side", "qty"]].iloc[0].tolist() == ["sell", 150.0]


def test_ibkr_commissions_and_taxes_are_positive_costs_in_their_own_columns(tickers) -> None:
    fills = parse("ibkr_flex_trades.csv", "ibkr-csv", tickers).fills.set_index("exec_id")
    row = fills.loc["0000e0d5.4fc8a1b3.01.01"]
    assert (row["commission"], row["fees"]) == (1.5, 0.02)
    assert (fills["commission"] >= 0).all() and (fills["fees"] >= 0).all()


def test_ibkr_rebate_is_refused_not_stored_as_a_negative_cost(tickers, tmp_path) -> None:
    path = write(tmp_path, IB_HEADER + '\n"U1","USD","STK","AAPL","BUY","10","400","0.35","0",'
                 '"O","20120110;093000","E1"\n')
    with pytest.raises(FillsFileError) as excinfo:
        parse_file(path, user_id="u1", fmt="ibkr-csv", instruments=tickers)
    assert refused(excinfo)[0][0] == "row 1 (line 2), IBCommission"
    assert "rebate" in refused(excinfo)[0][1]


def test_ibkr_cancel_is_netted_with_its_trade(tickers) -> None:
    parsed = parse("ibkr_flex_trades.csv", "ibkr-csv", tickers)
    msft = parsed.fills[parsed.fills["symbol"] == "MSFT"]
    assert msft["price"].tolist() == [28.47]  # the cancelled 28.45 fill and its cancel are out
    assert any("netted" in p.rule for p in parsed.problems)


def test_ibkr_cancel_of_a_trade_not_in_the_file_is_refused(tickers, tmp_path) -> None:
    header = IB_HEADER + ',"TransactionType","TradeID","OrigTradeID"'
    path = write(tmp_path, header + '\n"U1","USD","STK","AAPL","SELL (Ca.)","10","400","1",'
                 '"0","O","20120110;093000","E2","TradeCancel","9","8"\n')
    with pytest.raises(FillsFileError) as excinfo:
        parse_file(path, user_id="u1", fmt="ibkr-csv", instruments=tickers)
    [(where, rule)] = refused(excinfo)
    assert where == "row 1 (line 2), TransactionType" and "not in this file" in rule


def test_ibkr_non_execution_rows_are_skipped_and_fx_symbols_joined(tickers) -> None:
    fills = parse("ibkr_flex_trades.csv", "ibkr-csv", tickers).fills
    assert 1 not in fills["source_row"].tolist()  # row 1 is the ORDER summary
    assert "EURUSD" in set(fills["symbol"])


# ---------------------------------------------------------------------------- other formats
def test_thinkorswim_trade_history_section_legs_and_commissions(tickers) -> None:
    fills = parse("thinkorswim_statement.csv", "thinkorswim", tickers).fills
    assert fills["open_close"].tolist() == ["TO OPEN", "TO CLOSE", "TO OPEN", "TO OPEN",
                                            "TO OPEN"]
    assert fills["ts"].iloc[0] == utc("2012-06-01 13:31:10")  # platform time, US Eastern
    assert "AAPL 8 JUN 12 570 CALL" in set(fills["symbol"])
    msft = fills[fills["symbol"] == "MSFT"]
    assert msft["ts"].nunique() == 1  # the second leg inherits the first leg's time
    # one Cash Balance row (6.95 + 0.04) split 200:100 between the two rows it covers
    assert msft["commission"].round(4).tolist() == [4.66, 2.33]
    assert fills["commission"].iloc[1] == pytest.approx(6.96)


def test_tradovate_uses_the_utc_timestamp_and_fill_ids(tickers) -> None:
    fills = parse("tradovate_fills.csv", "tradovate", tickers).fills
    assert fills["exec_id"].tolist() == ["101236587", "101236612", "101236650"]
    assert fills["ts"].iloc[0] == utc("2024-03-15 13:30:01.250")
    assert fills["side"].tolist() == ["buy", "sell", "buy"]
    assert fills["commission"].tolist() == [4.18, 6.27, 2.09]


def test_mt5_lots_to_units_inout_kept_and_costs_positive(tickers) -> None:
    parsed = parse("mt5_deals_report.html", "mt5", tickers, tz=MT5_TZ)
    fills = parsed.fills
    assert fills["qty"].tolist() == [10_000.0, 20_000.0, 10_000.0]  # 100,000 units a lot
    assert fills["open_close"].tolist() == ["in", "inout", "out"]
    assert fills["commission"].tolist() == [0.7, 1.4, 0.7]
    assert fills["fees"].tolist() == [0.0, 0.0, 0.1]
    assert fills["ts"].iloc[0] == utc("2017-03-01 08:15:30")  # 10:15:30 at UTC+2
    assert any(p.column == "Type" and p.value == "balance" for p in parsed.problems)
    csv = parse("mt5_deals.csv", "mt5", tickers, tz=MT5_TZ).fills
    assert csv["exec_id"].tolist() == fills["exec_id"].tolist()


def test_mt5_server_time_needs_tz_and_unknown_contract_size_is_refused(tickers,
                                                                      tmp_path) -> None:
    with pytest.raises(FillsFileError) as excinfo:
        parse("mt5_deals.csv", "mt5", tickers)
    assert all(rule.endswith("pass --tz") for _, rule in refused(excinfo))
    text = (FIXTURES / "mt5_deals.csv").read_text().replace("EURUSD", "XAUUSD")
    with pytest.raises(FillsFileError) as excinfo:
        parse_file(write(tmp_path, text), user_id="u1", fmt="mt5", instruments=tickers,
                   tz=MT5_TZ)
    assert {w for w, _ in refused(excinfo)} == {"row 2 (line 3), Symbol",
                                                "row 3 (line 4), Symbol",
                                                "row 4 (line 5), Symbol"}


def test_identical_fills_in_one_file_stay_two_fills_with_stable_keys(tickers) -> None:
    first = parse("generic_fills.csv", "generic", tickers, column_map=GENERIC_MAP).fills
    again = parse("generic_fills.csv", "generic", tickers, column_map=GENERIC_MAP).fills
    twins = first[first["source_row"].isin([1, 2])]
    assert twins.drop(columns=["exec_id", "source_row"]).duplicated(keep="first").iloc[1]
    assert twins["exec_id"].nunique() == 2
    assert first["exec_id"].tolist() == again["exec_id"].tolist()
    assert first["exec_id"].str.len().eq(20).all()


def test_generic_map_errors_name_the_field_and_suggest(tickers) -> None:
    with pytest.raises(FillsFileError) as excinfo:
        parse("generic_fills.csv", "generic", tickers,
              column_map={"date": "Time", "symbl": "Sym", "qty": "Quantity"})
    errors = refused(excinfo)
    assert ("--map symbl", "not a fill field (ts, symbol, qty, price, side, time, commission, "
            "fees, currency, account, exec_id, order_id, open_close, venue); did you mean "
            "'symbol'?") in errors
    assert any(w == "--map qty" and "column not in the file" in r for w, r in errors)
    assert any(w == "price" and r.startswith("required field not mapped") for w, r in errors)


def test_generic_signed_quantity_gives_the_side_and_naive_times_need_tz(tickers,
                                                                        tmp_path) -> None:
    path = write(tmp_path, "ts,symbol,qty,price,currency\n2012-06-01 10:00:00,AAPL,-5,560,USD\n")
    with pytest.raises(FillsFileError) as excinfo:
        parse_file(path, user_id="u1", fmt="generic", instruments=tickers)
    assert refused(excinfo)[0][0] == "row 1 (line 2), ts"
    fills = parse_file(path, user_id="u1", fmt="generic", instruments=tickers,
                       tz="America/New_York").fills
    assert fills[["side", "qty"]].iloc[0].tolist() == ["sell", 5.0]
    assert fills["ts"].iloc[0] == utc("2012-06-01 14:00:00")


# ---------------------------------------------------------------------------- bad files
GOOD = "ts,symbol,side,qty,price,currency\n2012-06-01T10:00:00Z,AAPL,buy,5,560,USD\n"


@pytest.mark.parametrize(("row", "where", "rule"), [
    ("2012-06-01T11:00:00Z,AAPL,buy,5x,560,USD", "row 2 (line 3), qty", "not a number"),
    ("2012-13-45T11:00:00Z,AAPL,buy,5,560,USD", "row 2 (line 3), ts",
     "not an ISO-8601 date/time"),
    ("2012-06-01T11:00:00Z,AAPL,buy,5,-560,USD", "row 2 (line 3), price", "must be > 0"),
    ("2012-06-01T11:00:00Z,AAPL,hold,5,560,USD", "row 2 (line 3), side", "not a side"),
    ("2012-06-01T11:00:00Z,,buy,5,560,USD", "row 2 (line 3), symbol", "required, empty"),
])
def test_a_malformed_row_refuses_the_file_naming_row_column_rule_value(tickers, tmp_path,
                                                                       row, where,
                                                                       rule) -> None:
    with pytest.raises(FillsFileError) as excinfo:
        parse_file(write(tmp_path, GOOD + row + "\n"), user_id="u1", fmt="generic",
                   instruments=tickers)
    [error] = excinfo.value.errors
    assert error.field == where and error.rule.startswith(rule)
    assert where in str(excinfo.value)


def test_every_bad_cell_is_listed_at_once(tickers, tmp_path) -> None:
    text = (FIXTURES / "ibkr_flex_trades.csv").read_text()
    text = text.replace('"562.10"', '"abc"').replace('"20120601;154501"', '"2012-06-01"')
    with pytest.raises(FillsFileError) as excinfo:
        parse_file(write(tmp_path, text), user_id="u1", fmt="ibkr-csv", instruments=tickers)
    fields = excinfo.value.fields
    assert "row 3 (line 4), TradePrice" in fields and "row 4 (line 5), DateTime" in fields


def test_a_missing_column_is_named_with_what_the_file_has(tickers, tmp_path) -> None:
    text = (FIXTURES / "tradovate_fills.csv").read_text().replace("B/S", "Side")
    text = text.replace("_action", "_act")
    with pytest.raises(FillsFileError) as excinfo:
        parse_file(write(tmp_path, text), user_id="u1", fmt="tradovate", instruments=tickers)
    [error] = excinfo.value.errors
    assert error.field == "B/S" and error.rule.startswith("required column missing")
    assert "Fill ID" in error.rule


def test_unknown_format_and_bad_tz_are_named(tickers) -> None:
    with pytest.raises(FillsFileError, match="--format: unknown format"):
        parse("generic_fills.csv", "quicken", tickers)
    with pytest.raises(FillsFileError, match="--tz: unknown time zone"):
        parse("mt5_deals.csv", "mt5", tickers, tz="Mars/Olympus")
