"""Text features: the hand-written scanner agrees with Python's tokenizer on whole files,
never fails on cut text, and gives the documented value on hand-made examples."""
import io
import re
import sysconfig
import tokenize
from pathlib import Path

import numpy as np
import pytest

from lstmkit.report.features import code_features, guess_kind, prose_features, text_features

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FILES = ["textwrap.py", "shlex.py", "tokenize.py", "string.py", "json/decoder.py"]


def tokenize_masks(text):
    """in_string / in_triple_string / in_comment from tokenize: a string from its opening
    quote up to, not including, its last closing quote character (the state after reading
    each character); triple-quoted strings apart."""
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    s, s3, c = np.zeros(len(text), int), np.zeros(len(text), int), np.zeros(len(text), int)
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        a = starts[tok.start[0] - 1] + tok.start[1]
        b = starts[tok.end[0] - 1] + tok.end[1]
        if tok.type == tokenize.STRING:
            q = re.search("['\"]", tok.string).start()
            triple = tok.string[q:q + 3] in ('"""', "'''")
            (s3 if triple else s)[a + q:b - 1] = 1
        elif tok.type == tokenize.COMMENT:
            c[a:b] = 1
    return s, s3, c


@pytest.mark.parametrize("name", FILES)
def test_strings_and_comments_match_tokenize(name):
    text = (STDLIB / name).read_text(encoding="utf-8")
    want_s, want_s3, want_c = tokenize_masks(text)
    got = code_features(text)
    assert want_s.sum() > 100 and want_s3.sum() > 100
    np.testing.assert_array_equal(got["in_string"], want_s)
    np.testing.assert_array_equal(got["in_triple_string"], want_s3)
    np.testing.assert_array_equal(got["in_comment"], want_c)


def test_hand_example():
    text = 'x = f(a, "s(#)")  # c(\n    y = [1,\n'
    f = code_features(text)
    at = lambda feat, i: f[feat][i]  # noqa: E731
    q = text.index('"')
    assert [at("in_string", i) for i in range(q - 1, q + 6)] == [0, 1, 1, 1, 1, 1, 0]
    h = text.index("# c")
    assert at("in_comment", h) == 1 and at("in_comment", text.index("\n")) == 0
    # brackets in the string and the comment do not count; the state after reading
    assert at("bracket_depth", text.index("(")) == 1 and at("bracket_depth", text.index("s(")) == 1
    assert at("bracket_depth", text.index(")  #")) == 0 and at("bracket_depth", text.index("c(")) == 0
    assert at("bracket_depth", len(text) - 1) == 1
    y = text.index("y")
    assert [at("indentation", i) for i in range(y - 5, y + 2)] == [0, 1, 2, 3, 4, 4, 4]
    assert at("position_in_line", 0) == 1 and at("position_in_line", text.index("\n")) == 0


def test_triple_quotes_escapes_and_tabs():
    text = '"""a "b" \\""" c"""\n\tx = \'it\\\'s\'\n'
    f = code_features(text)
    end = text.index('"""\n') + 2
    assert all(f["in_triple_string"][:end]) and f["in_triple_string"][end] == 0
    assert not any(f["in_string"][:end + 1])                 # the inner "b" is not a literal
    assert f["indentation"][text.index("x")] == 8
    q, e = text.index("'"), text.index("'\n")
    assert f["in_string"][q:e] == [1] * (e - q) and not any(f["in_triple_string"][end:])


@pytest.mark.parametrize("cut", [1, 7, 333, 1001, 2048])
def test_cut_text_never_fails(cut):
    text = (STDLIB / "textwrap.py").read_text(encoding="utf-8")
    for piece in (text[cut:cut + 500], text[:cut], "'''", "'", "\\", ")))(", '"\\'):
        f = text_features(piece, "code")
        assert all(len(v) == len(piece) for v in f.values.values())
        assert f.values["bracket_depth"].min() >= 0


def test_unterminated_one_line_string_ends_at_newline():
    f = code_features("s = 'abc\nx = (1)\n")
    assert f["in_string"][-5:] == [0, 0, 0, 0, 0] and max(f["bracket_depth"]) == 1


def test_prose_quotes_and_kind():
    text = 'He said "stop" and \u201cgo\u201d.\n\n"open\n\nnext'
    f = prose_features(text)
    got = "".join(c for c, v in zip(text, f["in_quotes"]) if v)
    assert got == '"stop\u201cgo"open\n'
    assert guess_kind(text) == "prose"
    assert guess_kind((STDLIB / "textwrap.py").read_text(encoding="utf-8")) == "code"
    assert text_features(text).names == ("in_quotes", "position_in_line")


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        text_features("x", "json")
    with pytest.raises(TypeError, match="text"):
        text_features(b"x")
