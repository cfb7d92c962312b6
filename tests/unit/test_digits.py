"""Numbers users write as text (lab/digits.py): ASCII decimal, one spelling per value."""

import argparse

import pytest

from lab.digits import int_arg, parse_int, parse_real, real_arg


@pytest.mark.parametrize("text, value", [("0", 0), ("7", 7), ("65535", 65535)])
def test_decimal_integers(text, value):
    assert parse_int(text) == value


@pytest.mark.parametrize("text", [
    "", " 1", "1 ", "+1", "-1", "1_000", "0_1", "01", "0x10", "1e3", "1.0",
    "\u0661", "\uff11", "\u00b9", "1\n", "\u0661\u0660", "9" * 25])
def test_other_spellings_are_refused(text):
    with pytest.raises(ValueError, match="not a decimal number"):
        parse_int(text)


def test_range_and_message():
    with pytest.raises(ValueError, match=r"^0 is out of range \(1..10\)$"):
        parse_int("0", 1, 10)
    with pytest.raises(ValueError) as e:
        parse_int("1\n\u0661")
    assert str(e.value) == "'1\\n\\u0661' is not a decimal number (digits 0-9 only)"


@pytest.mark.parametrize("text, value", [("2", 2.0), ("0.5", 0.5), ("10.25", 10.25)])
def test_decimal_reals(text, value):
    assert parse_real(text) == value


@pytest.mark.parametrize("text", ["nan", "inf", "1e3", ".5", "5.", "+1", "1_0.5", "\u0661.5",
                                  "0.5\n"])
def test_other_real_spellings_are_refused(text):
    with pytest.raises(ValueError, match="not a decimal number"):
        parse_real(text)


def test_argparse_types_keep_the_message(capsys):
    p = argparse.ArgumentParser(prog="x")
    p.add_argument("--n", type=int_arg(1))
    p.add_argument("--s", type=real_arg(0.1))
    assert p.parse_args(["--n", "3", "--s", "0.5"]).n == 3
    with pytest.raises(SystemExit):
        p.parse_args(["--n", "1_0"])
    assert "argument --n: '1_0' is not a decimal number" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["bench", "build", "--pods", "1_0"], ["bench", "build", "--repeat", "+3"],
    ["bench", "prog", "--runs", "\u0667"], ["run", "--repeat", "0_1"],
    ["vm", "--cpus", "\uff12", "--list"], ["vm", "--mem", "\u0665G", "--list"],
    ["vm", "--timeout", "1e3", "--list"], ["compare", "a.json", "b.json", "--threshold", "nan"],
    ["bigtcp", "x", "--count", "inf"], ["agent", "--timeout", "1_0"],
    ["agent", "--max-connections", "0x10"], ["bench", "gateway", "--seconds", "\u0661"],
])
def test_command_line_numbers_are_ascii_decimal(argv, capsys):
    from lab.commands import main
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "not a decimal number" in err or "not a size" in err, err
