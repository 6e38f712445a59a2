"""The EDN reader and the conversion of EDN events into checker ops."""

import re

import pytest

from dst.check.linearizability import INF, UNKNOWN
from dst.check.edn import (EdnError, Keyword, Symbol, parse_events, read_events, read_forms, to_json,
                     to_operations)
from dst.history import HistoryFormatError
from dst.check.models.base import NO_KEY
from dst.check.models.kv import KvModel
from dst.check.models.register import RegisterModel


def one(text):
    ((_, value),) = read_forms(text, "t.edn")
    return value


# -- the reader ----------------------------------------------------------------

def test_scalars():
    assert one("42") == 42 and one("-7") == -7 and one("+3") == 3 and one("12N") == 12
    assert one("1.5") == 1.5 and one("-2e3") == -2000.0 and one("1.25M") == 1.25
    assert one("nil") is None and one("true") is True and one("false") is False
    assert one(":invoke") == Keyword("invoke") and repr(one(":a/b")) == ":a/b"
    assert one("foo") == Symbol("foo")
    assert one("##Inf") == float("inf") and one("##-Inf") == float("-inf") and one("##NaN") != one("##NaN")
    assert one(r"\a") == "a" and one(r"\newline") == "\n" and one(r"\u00e9") == "é"


def test_strings_with_escapes():
    assert one(r'"x 0 0 y"') == "x 0 0 y"
    assert one(r'"a\"b\\c\nd\te\u00e9\/"') == 'a"b\\c\nd\teé/'
    assert one('"multi\nline"') == "multi\nline"
    assert one('""') == ""


def test_collections():
    assert one("[1 2 [3 4]]") == (1, 2, (3, 4))
    assert one("(1, 2)") == (1, 2)
    assert one("#{1 2}") == frozenset({1, 2})
    assert one("{:a 1, :b [2 3], \"s\" nil}") == {Keyword("a"): 1, Keyword("b"): (2, 3), "s": None}
    assert one("{}") == {} and one("[]") == ()


def test_comments_discards_and_tags():
    forms = read_forms("; a comment\n{:a 1} ; trailing\n#_ {:dropped 1}\n#inst \"2026-11-27\"\n"
                       "#jepsen.history.Op{:index 3}\n", "t.edn")
    assert [line for line, _ in forms] == [2, 4, 5]
    assert forms[0][1] == {Keyword("a"): 1}
    assert forms[1][1] == "2026-11-27"
    assert forms[2][1] == {Keyword("index"): 3}


@pytest.mark.parametrize("text, line, message", [
    ('{:a 1}\n{:a 2}\n{:a "oops}\n', 3, "unterminated string"),
    ('{:a 1}\n{:a "x\\qy"}\n', 2, r"unknown escape \q"),
    ('{:a "\\u12"}', 1, r"bad \u escape"),
    ('{:a 1}\n{:a 2\n{:a 3}\n{:a 4}\n', 2, "unclosed '{'"),
    ('{:a 1]\n', 1, "expected '}', found ']'"),
    ('{:a 1}\n)\n', 2, "unexpected ')'"),
    ('{:a}\n', 1, "even number of forms"),
    ('{:a 1 :a 2}\n', 1, "duplicate map key :a"),
    ('{:a 12abc}\n', 1, "bad number '12abc'"),
    ('\n\n{:a :}\n', 3, "empty keyword"),
    ('{:a #1}\n', 1, "bad dispatch"),
    ('{:a ##Huge}\n', 1, "unknown symbolic value '##Huge'"),
    ("[" * 150, 1, "nested deeper"),
])
def test_malformed_input_names_file_and_line(text, line, message):
    with pytest.raises(EdnError) as info:
        read_forms(text, "h.edn")
    assert str(info.value).startswith(f"h.edn:{line}: "), str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_edn_error_is_a_history_format_error():
    assert issubclass(EdnError, HistoryFormatError)


# -- events --------------------------------------------------------------------

GOOD = """{:process 0, :type :invoke, :f :write, :value 3}
{:process 0, :type :ok, :f :write, :value 3}

{:process :nemesis, :type :info, :f :start, :value nil}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 3}
"""


def test_events_carry_their_lines():
    ev = parse_events(GOOD, "g.edn")
    assert [(e.line, e.process, e.type, e.f, e.value) for e in ev] == [
        (1, 0, "invoke", "write", 3), (2, 0, "ok", "write", 3),
        (4, Keyword("nemesis"), "info", "start", None),
        (5, 1, "invoke", "read", None), (6, 1, "ok", "read", 3)]
    assert all(e.key is NO_KEY for e in ev)


def test_a_vector_of_maps_reads_like_one_map_per_line():
    text = "[{:process 0, :type :invoke, :f :read, :value nil}\n {:process 0, :type :ok, :f :read, :value 1}]\n"
    ev = parse_events(text, "v.edn")
    assert [(e.line, e.type) for e in ev] == [(1, "invoke"), (2, "ok")]


@pytest.mark.parametrize("text, line, message", [
    ("{:process 0, :type :invoke, :f :read}\n{:process 0, :type :done, :f :read}\n", 2,
     ":type must be :invoke, :ok, :fail or :info, got :done"),
    ("{:process 0, :type :invoke, :f :read}\n{:type :ok, :f :read}\n", 2, "lacks :process"),
    ("{:process 0, :type :invoke, :f :read}\n[1 2]\n", 2, "expected an op map"),
    ("{:process 0, :type :invoke, :f :read}\n42\n", 2, "expected an op map"),
    ("{:process 0, :type :invoke, :f 7}\n", 1, ":f must be a keyword"),
])
def test_malformed_events_name_file_and_line(text, line, message):
    with pytest.raises(EdnError, match=rf"^e\.edn:{line}: .*{message}"):
        parse_events(text, "e.edn")


def test_read_events_from_a_file(tmp_path):
    p = tmp_path / "history.edn"
    p.write_text(GOOD + '{:process 2, :type :invoke, :f :read, :value "unterminated}\n')
    with pytest.raises(EdnError, match=rf"^{p}:7: unterminated string$"):
        read_events(p)
    with pytest.raises(EdnError, match="cannot read"):
        read_events(tmp_path / "missing.edn")
    p.write_bytes(b"{:process 0}\n{:f \xff}\n")
    with pytest.raises(EdnError, match=rf"^{p}:2: not UTF-8 text$"):
        read_events(p)


# -- conversion -------------------------------------------------------------------

def ops_of(text, model, source="c.edn"):
    return to_operations(parse_events(text, source), model, source)


def test_pairing_fail_info_and_open_invokes():
    text = """{:process 0, :type :invoke, :f :write, :value 1}
{:process 1, :type :invoke, :f :write, :value 2}
{:process 2, :type :invoke, :f :write, :value 3}
{:process 0, :type :ok, :f :write, :value 1}
{:process 1, :type :fail, :f :write, :value 2}
{:process 2, :type :info, :f :write, :value 3}
{:process 3, :type :invoke, :f :write, :value 4}
{:process 4, :type :invoke, :f :read, :value nil}
{:process 4, :type :ok, :f :read, :value 1}
{:process 5, :type :invoke, :f :read, :value nil}
"""
    ops, origin = ops_of(text, RegisterModel())
    # the :fail write is gone, and so is the read that never completed
    assert [(o.input, o.output, o.call, o.ret, o.index) for o in ops] == [
        (("write", 1), None, 0, 3, 1),
        (("write", 3), UNKNOWN, 2, INF, 3),       # :info: open interval
        (("write", 4), UNKNOWN, 6, INF, 7),       # never completed: the same
        (("read",), 1, 7, 8, 8),
    ]
    assert [c.line for c in origin] == [1, 3, 7, 8]
    assert [c.end_line for c in origin] == [4, 6, None, 9]


def test_times_are_event_positions_and_skip_the_nemesis():
    ops, _ = ops_of(GOOD, RegisterModel())
    assert [(o.call, o.ret) for o in ops] == [(0, 1), (3, 4)]


@pytest.mark.parametrize("text, line, message", [
    ("{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :invoke, :f :write, :value 2}\n",
     2, "process 0 invokes again while its op from line 1 is still open"),
    ("{:process 0, :type :ok, :f :write, :value 1}\n", 1, "completes a 'write' it never invoked"),
    ("{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :read, :value 1}\n",
     2, "completes 'read' but invoked 'write'"),
    ("{:process 0, :type :invoke, :f :frob, :value 1}\n", 1, "'frob' is not an op of the register model"),
    ("{:process 0, :type :invoke, :f :cas, :value [1 2]}\n", 1, "use --model cas-register"),
    ("{:process 0, :type :invoke, :f :write, :key \"k\", :value 1}\n", 1, "use --model kv"),
])
def test_conversion_errors_name_file_and_line(text, line, message):
    with pytest.raises(HistoryFormatError, match=rf"^c\.edn:{line}: .*{message}"):
        ops_of(text, RegisterModel())


def test_cas_needs_old_and_new():
    text = "{:process 0, :type :invoke, :f :cas, :value 5}\n"
    with pytest.raises(HistoryFormatError, match=r"^c\.edn:1: cas needs a value \[old new\], got 5$"):
        ops_of(text, RegisterModel(cas=True))


def test_kv_key_as_key_field_or_in_the_value():
    porcupine = """{:process 0, :type :invoke, :f :append, :key "k", :value "x"}
{:process 0, :type :ok, :f :append, :key "k", :value "x"}
{:process 0, :type :invoke, :f :get, :key "k", :value nil}
{:process 0, :type :ok, :f :get, :key "k", :value "x"}
"""
    knossos = """{:process 0, :type :invoke, :f :write, :value [:k "x"]}
{:process 0, :type :ok, :f :write, :value [:k "x"]}
{:process 0, :type :invoke, :f :read, :value [:k nil]}
{:process 0, :type :ok, :f :read, :value [:k "x"]}
"""
    ops, _ = ops_of(porcupine, KvModel())
    assert [(o.input, o.output) for o in ops] == [(("append", "k", "x"), None), (("get", "k"), "x")]
    ops, _ = ops_of(knossos, KvModel())
    assert [(o.input, o.output) for o in ops] == [(("put", Keyword("k"), "x"), None),
                                                  (("get", Keyword("k")), "x")]


@pytest.mark.parametrize("text, message", [
    ("{:process 0, :type :invoke, :f :get, :value nil}\n", "a kv op needs :key, or a :value [k v]"),
    ("{:process 0, :type :invoke, :f :append, :key \"k\", :value 3}\n", "append needs a string value, got 3"),
    ("{:process 0, :type :invoke, :f :cas, :key \"k\", :value [1 2]}\n", "'cas' is not an op of the kv model"),
])
def test_kv_conversion_errors(text, message):
    with pytest.raises(HistoryFormatError, match=rf"^c\.edn:1: {re.escape(message)}"):
        ops_of(text, KvModel())


def test_to_json():
    assert to_json((Keyword("a"), Symbol("b"), frozenset({2, 1}), {Keyword("k"): (1,)})) == \
        [":a", "b", [1, 2], {":k": [1]}]
