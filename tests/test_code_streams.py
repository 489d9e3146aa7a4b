"""Value/type streams of hand-written snippets: every type, literal rules, cardinal points, broken prefixes."""

from __future__ import annotations

import pytest

from domains.code import streams as S
from domains.code.streams import detokenize, extract_streams

# One module touching every identifier role; the expectations below name the occurrence they check.
EVERY_ROLE = '''"""Module docstring: dropped."""
import os
import numpy as np
from collections import OrderedDict as OD, deque

LIMIT = 10


class Shape(object):
    """Class docstring: dropped."""

    sides = 0

    def area(self, scale, *args, unit=None, **options):
        total = scale * LIMIT
        path = os.path.join(unit, "cm")
        squares = [side * side for side in args]
        np.zeros(total, dtype=float)
        self.label = OD(name=path)
        return len(squares) + 123456789012345678901234567890


def helper():
    global LIMIT
    LIMIT = deque()
    return Shape().area(2)
'''


def tokens_of(streams, value):
    return [t for t in streams.tokens if t.value == value]


def type_at(streams, value, occurrence=0):
    return tokens_of(streams, value)[occurrence].type


@pytest.fixture(scope="module")
def every_role():
    return extract_streams(EVERY_ROLE)


def test_streams_are_aligned_and_fully_parsed(every_role):
    s = every_role
    assert len(s.values) == len(s.types) == len(s.cardinal) == len(s.statement_pos) == len(s.type_ids)
    assert s.fully_parsed and s.parsed_lines == len(EVERY_ROLE.splitlines())
    assert all(t in S.TYPE_IDS for t in s.types)


@pytest.mark.parametrize(
    "value, occurrence, expected",
    [
        ("os", 0, S.LIBRARY),  # import os
        ("os", 1, S.LIBRARY),  # a later use of it
        ("numpy", 0, S.LIB),  # import numpy as np
        ("np", 0, S.ALIAS),
        ("np", 1, S.ALIAS),  # np.zeros(...)
        ("collections", 0, S.MODULE),  # from collections import ...
        ("OrderedDict", 0, S.LIB),
        ("OD", 0, S.ALIAS),
        ("OD", 1, S.ALIAS),  # a called alias stays ALIAS, as in the official conversion
        ("deque", 0, S.LIBRARY),
        ("LIMIT", 0, S.GLOBAL_VARIABLE),  # module level
        ("LIMIT", 1, S.GLOBAL_VARIABLE),  # read inside a method
        ("LIMIT", 3, S.GLOBAL_VARIABLE),  # assigned after `global LIMIT`
        ("Shape", 0, S.CLASS_NAME),
        ("object", 0, S.GLOBAL_VARIABLE),  # a builtin, read
        ("sides", 0, S.LOCAL_VARIABLE),  # class body
        ("area", 0, S.FUNCTION_NAME),
        ("self", 0, S.PARAMETER),
        ("scale", 0, S.PARAMETER),
        ("args", 0, S.PARAMETER),
        ("unit", 0, S.PARAMETER),
        ("options", 0, S.PARAMETER),
        ("scale", 1, S.PARAMETER),  # used in the body
        ("total", 0, S.LOCAL_VARIABLE),
        ("side", 0, S.LOCAL_VARIABLE),  # comprehension variable
        ("args", 1, S.PARAMETER),
        ("path", 0, S.LOCAL_VARIABLE),
        ("path", 1, S.ATTRIBUTE),  # os.path
        ("join", 0, S.FUNCTION_CALL),  # os.path.join(
        ("zeros", 0, S.FUNCTION_CALL),
        ("dtype", 0, S.KEYWORD_ARGUMENT),
        ("float", 0, S.GLOBAL_VARIABLE),
        ("label", 0, S.ATTRIBUTE),  # self.label =
        ("name", 0, S.KEYWORD_ARGUMENT),
        ("len", 0, S.FUNCTION_CALL),
        ("helper", 0, S.FUNCTION_NAME),
        ("Shape", 1, S.FUNCTION_CALL),  # Shape()
        ("area", 1, S.FUNCTION_CALL),  # .area(2)
    ],
)
def test_identifier_roles(every_role, value, occurrence, expected):
    assert type_at(every_role, value, occurrence) == expected


def test_every_role_and_structure_type_is_covered(every_role):
    seen = set(every_role.types)
    assert set(S.ROLE_TYPES) <= seen, f"roles not exercised: {set(S.ROLE_TYPES) - seen}"
    assert set(S.STRUCTURE_TYPES) | {S.NUMBER, S.STRING, S.OP} <= seen


def test_keywords_are_their_own_types(every_role):
    for keyword in ("import", "from", "as", "class", "def", "return", "global", "for", "in", "None"):
        assert type_at(every_role, keyword) == keyword.upper()


def test_literals_docstrings_and_structure(every_role):
    values = every_role.values
    assert '"cm"' in values and "10" in values and "2" in values  # short literals kept verbatim
    assert S.NUM_LIT in values  # a 30-digit number is normalised
    assert not any("docstring" in v for v in values)  # bare-string lines are dropped
    assert values[-1] == S.EOS_VALUE and values.count(S.EOS_VALUE) == 1
    assert values.count(S.INDENT_VALUE) == values.count(S.DEDENT_VALUE) == 3
    assert extract_streams("x = 'a very long string literal indeed'\n").values[2] == S.STR_LIT
    assert extract_streams("x = '''two\nlines'''\n").values[2] == S.STR_LIT
    assert extract_streams("x = 1  # comment\n").values == ["x", "=", "1", S.NEWLINE_VALUE, S.EOS_VALUE]


def test_soft_keywords():
    s = extract_streams("match command:\n    case 'go':\n        pass\nmatch = 1\ncase = match\n")
    assert type_at(s, "match", 0) == "MATCH" and type_at(s, "case", 0) == "CASE"
    assert type_at(s, "match", 1) == S.GLOBAL_VARIABLE and type_at(s, "case", 1) == S.GLOBAL_VARIABLE


def test_non_ascii_names_keep_their_roles():
    s = extract_streams("é = 1\ndef f(ü):\n    return ü + é\n")
    assert [t.type for t in tokens_of(s, "ü")] == [S.PARAMETER, S.PARAMETER]
    assert [t.type for t in tokens_of(s, "é")] == [S.GLOBAL_VARIABLE, S.GLOBAL_VARIABLE]


def test_cardinal_points():
    s = extract_streams("import os\nx = os.path\nif x:\n    y = f(x, 2)\n")
    cardinal = {(t.value, t.start): c for t, c in zip(s.tokens, s.cardinal)}
    assert cardinal[("os", (1, 7))]  # after a keyword
    assert cardinal[("x", (2, 0))]  # start of a statement
    assert cardinal[("os", (2, 4))]  # after "="
    assert cardinal[("path", (2, 7))]  # after "."
    assert cardinal[("x", (4, 10))]  # after "("
    assert cardinal[("2", (4, 13))]  # after ","
    assert not cardinal[("=", (2, 2))] and not cardinal[(".", (2, 6))]  # operators are never targets
    assert not any(c for t, c in zip(s.tokens, s.cardinal) if t.type in S.STRUCTURE_TYPES)


def test_statement_positions():
    s = extract_streams("a = 1\nif a:\n    b = 2\n")
    pos = dict(zip([(t.value, t.start[0]) for t in s.tokens], s.statement_pos))
    assert pos[("a", 1)] == 0 and pos[("=", 1)] == 1 and pos[(S.NEWLINE_VALUE, 1)] == 3
    assert pos[(S.INDENT_VALUE, 3)] == -1 and pos[("b", 3)] == 0


def test_prefix_that_does_not_parse_falls_back_to_tokenize_roles():
    prefix = "import numpy as np\n\ndef f(p, q):\n    y = np.zeros(p,\n        dtype=helper(q), out=y.ma"
    s = extract_streams(prefix, partial=True)
    assert s.syntax_error is not None and s.parsed_lines == 3  # lines 1-3 parse (the def closed with `pass`)
    assert S.EOS_VALUE not in s.values and s.values[-1] == "ma"  # no implicit end-of-file tokens
    assert type_at(s, "np", 1) == S.ALIAS
    assert type_at(s, "zeros") == S.FUNCTION_CALL
    assert type_at(s, "p", 1) == S.PARAMETER and type_at(s, "q", 1) == S.PARAMETER
    assert type_at(s, "dtype") == S.KEYWORD_ARGUMENT and type_at(s, "out") == S.KEYWORD_ARGUMENT
    assert type_at(s, "helper") == S.FUNCTION_CALL
    assert type_at(s, "y", 1) == S.LOCAL_VARIABLE and type_at(s, "ma") == S.ATTRIBUTE


def test_nothing_parses_at_all():
    s = extract_streams("def (:\n  class\n", partial=True)
    assert s.parsed_lines == 0 and s.syntax_error.startswith("line 1")
    assert s.values[:3] == ["def", "(", ":"]


def test_prefix_on_an_indented_blank_line_opens_the_block():
    s = extract_streams("def f(x):\n    ", partial=True)
    assert s.values[-2:] == [S.NEWLINE_VALUE, S.INDENT_VALUE]
    s = extract_streams("def f(x):\n    return x\n", partial=True)
    assert s.values[-2:] == [S.NEWLINE_VALUE, S.DEDENT_VALUE]  # back at column 0


def test_broken_file_is_kept_up_to_its_error():
    s = extract_streams("a = 1\nb = 2\nc = (\nd = 4\n")
    kept = s.truncated_at_error()
    assert s.error_line == 3
    assert kept.values == ["a", "=", "1", S.NEWLINE_VALUE, "b", "=", "2", S.NEWLINE_VALUE, S.EOS_VALUE]


def test_detokenize_reads_back():
    source = "def f(x, *args, key=None):\n    return g(x)[0] + h.y\n"
    assert detokenize(extract_streams(source).values) == source
