"""The page is self-contained, its data block cannot be broken out of, and it carries the
text and the analysis exactly; the PNG figures are written beside it."""
import base64
import json
import re

import numpy as np
import pytest

from lstmkit.report.html import display_scale, json_for_script, page_data

from ..report_helpers import make_report, write_page

NASTY = 'x = "</script><script>window.__pwned=1</script>"\n</div>&amp; & {{DATA}} \u2028 \U0001F600 <!--\n'


def data_block(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_json_for_script_escapes_markup():
    s = json_for_script({"t": "</script><b>&"})
    assert not set("<>&") & set(s) and json.loads(s) == {"t": "</script><b>&"}


def test_nasty_text_is_carried_exactly_and_never_as_markup(tmp_path):
    page = write_page(tmp_path, NASTY).html.read_text(encoding="utf-8")
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "__pwned" not in page.split('id="data">')[0] and "</div>&amp;" not in page
    data = data_block(page)
    assert data["text"] == NASTY
    assert all(u["snippet"] == NASTY[u["start"]:u["start"] + len(u["snippet"])] for u in data["top"])


def test_page_is_self_contained(tmp_path):
    w = write_page(tmp_path, title="<b>run</b>")
    page = w.html.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"(src|href)\s*=\s*(?![\"']?data:)", page, re.I)      # only data: URIs
    assert not re.search(r"https?://|@import|url\(", page)
    assert page.count('src="data:image/png;base64,') == 3
    assert "<title>&lt;b&gt;run&lt;/b&gt;</title>" in page
    for p in w.pngs.values():
        assert p.parent == tmp_path and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in w.pngs.values()) == ["report_memory.png", "report_saturation.png",
                                                       "report_units.png"]


def test_page_data_holds_every_activation_quantised():
    rep = make_report()
    data = page_data(rep, "t")
    acts = rep.activations
    assert data["keys"] == [[0, 0], [0, 1], [1, 0], [1, 1]] and data["quantities"] == ["i", "f", "g", "o", "c", "tanh(c)", "h"]
    raw = np.frombuffer(base64.b64decode(data["acts"]["1,1,c"]), np.uint8).reshape(len(acts.text), 8)
    c = acts.records[1, 1]["c"]
    want = c / np.abs(c).max(0)
    np.testing.assert_allclose(raw / 127.0 - 1, want, atol=0.5 / 127 + 1e-12)
    H = data["hidden"]
    for u in data["top"]:                        # snippets are coloured exactly as on the page
        page = np.frombuffer(base64.b64decode(data["acts"][f"{u['layer']},{u['direction']},{u['quantity']}"]), np.uint8)
        column = page.reshape(len(acts.text), H[f"{u['layer']},{u['direction']}"])[:, u["unit"]]
        assert u["values"] == column[u["start"]:u["start"] + len(u["snippet"])].tolist()
    best = max(rep.top_units, key=lambda u: abs(u.r))
    assert data["initial"] == {"layer": best.layer, "direction": best.direction,
                               "quantity": best.quantity, "unit": best.unit}


def test_page_shows_the_first_characters_and_analyses_all():
    rep = make_report()
    n, show = len(rep.activations.text), 17
    data = page_data(rep, "t", show=show)
    assert data["text"] == rep.activations.text[:show]
    for key, b64 in data["acts"].items():
        layer, direction, q = key.split(",")
        a = rep.activations.records[int(layer), int(direction)][q]
        page = np.frombuffer(base64.b64decode(b64), np.uint8).reshape(show, a.shape[1])
        scale = np.abs(a).max(0) if q == "c" else None     # c over the whole text, as in the snippets
        np.testing.assert_array_equal(page, np.rint((display_scale(q, a, scale)[:show] + 1) * 127))
    assert data == {**page_data(rep, "t"), "text": data["text"], "acts": data["acts"]}   # r, top: all n
    assert n > show and data["corr"] == page_data(rep, "t")["corr"]


@pytest.mark.parametrize("q,a,want", [("f", [0.75, 0.1], [0.5, -0.8]), ("h", [-0.3, 2], [-0.3, 1]), ("tanh(c)", [0.5], [0.5]),
                                      ("c", [[8.0, 0.0], [-2.0, 0.0]], [[1.0, 0.0], [-0.25, 0.0]])])
def test_display_scale(q, a, want):
    np.testing.assert_allclose(display_scale(q, np.array(a)), want, atol=1e-8)
