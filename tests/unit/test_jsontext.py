"""guardian.jsontext against the json package: the same text written, the same values read,
the same texts refused."""
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardian import jsontext

keys = st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none())
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text())
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(keys, inner, max_size=4)), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(values)
def test_dumps_writes_what_json_writes(value):
    assert jsontext.dumps(value) == json.dumps(value)
    assert jsontext.dumps(value, separators=(",", ":")) == json.dumps(value, separators=(",", ":"))


@settings(max_examples=200, deadline=None)
@given(st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)), max_leaves=20))
def test_sorted_keys_and_reading_back(value):
    text = jsontext.dumps(value, sort_keys=True)
    assert text == json.dumps(value, sort_keys=True)
    assert _same(jsontext.loads(text), json.loads(text))


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def test_default_and_the_errors_json_raises():
    class Thing:
        def __str__(self):
            return "thing é"

    assert jsontext.dumps({"x": Thing(), "é": [1.5, float("inf")]}, default=str) == json.dumps(
        {"x": Thing(), "é": [1.5, float("inf")]}, default=str)
    with pytest.raises(TypeError):
        jsontext.dumps({"x": Thing()})
    with pytest.raises(TypeError):
        jsontext.dumps({(1, 2): 3})


@pytest.mark.parametrize("text", [
    '{"a": 1}', ' [1, 2.5, -0, -1e3, 1E+2, 0.5e-1] ', '"\\u00e9\\ud83d\\ude00\\ud800x\\n\\/"', 'NaN', '-Infinity',
    '{"a": {"b": [true, false, null, {}]}, "a": 2}', '"\x7f\u00e9"', '12345678901234567890', '[]', '"\\\\"'])
def test_loads_reads_what_json_reads(text):
    assert _same(jsontext.loads(text), json.loads(text))
    assert _same(jsontext.loads(text.encode()), json.loads(text.encode()))


@pytest.mark.parametrize("text", [
    '', ' ', '{', '[1,]', '{"a":1,}', '{"a" 1}', '{a: 1}', '[1 2]', '"abc', '"a\tb"', '"\\x"', '"\\u12"',
    '01', '1.', '.5', '-', '1e', 'nul', 'true false', '[1]x', '\ufeff{}', '"\\u12G4"', "'a'", '+1', '--1'])
def test_loads_refuses_what_json_refuses(text):
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        jsontext.loads(text)


def test_parse_hooks():
    assert jsontext.loads('[1.5, 2]', parse_float=lambda t: "f" + t) == ["f1.5", 2]
    with pytest.raises(ValueError):
        jsontext.loads('[NaN]', parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
