"""The gate report as one self-contained HTML page: no network, inline CSS and JS, data
embedded as JSON, figures as data: URIs.

Safety: the text and every string from the run reach the page only (1) inside the JSON
block, where ``<``, ``>``, ``&`` and the JS line separators are written as ``\\u003c``
etc., so ``</script>`` in the text cannot close the block, and (2) as DOM text nodes set
through ``textContent`` by the page script, never as markup. Server-side strings in the
markup go through ``html.escape``. A Content-Security-Policy forbids loading anything.
"""
from __future__ import annotations

import base64
import html
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np

from .analysis import SIGMOID_GATES, GateReport
from .features import TextFeatures

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def json_for_script(obj) -> str:
    """JSON that is safe inside a <script> element: no '<', '>' or '&' left raw."""
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return "".join(_JSON_ESCAPES.get(ch, ch) for ch in s)


def display_scale(quantity: str, values: np.ndarray, c_max: np.ndarray | None = None) -> np.ndarray:
    """Map activations (T, H) to [-1, 1] for colour: σ gates 2a − 1 (0.5 is white); the
    cell state divided by each unit's largest |c| over the text (``c_max``, default from
    ``values``): c grows well past 1 in a trained model, where tanh(c), Karpathy et al.'s
    choice, would show a tracking unit as one flat colour; g, n and h as they are."""
    if quantity in SIGMOID_GATES:
        v = 2.0 * values - 1.0
    elif quantity == "c":
        c_max = np.abs(values).max(0) if c_max is None else c_max
        v = values / np.where(c_max > 0, c_max, 1.0)
    else:
        v = values
    return np.clip(v, -1.0, 1.0)


def _quantise(v: np.ndarray) -> np.ndarray:
    """[-1, 1] -> uint8 0..254 (127 is 0), for a compact page."""
    return np.rint((v + 1.0) * 127.0).astype(np.uint8)


def _c_max(acts, u) -> np.ndarray | None:
    """The unit's largest |c| over the whole text, so its snippet is coloured as on the page."""
    return np.abs(acts.records[u.layer, u.direction]["c"][:, u.unit]).max() if u.quantity == "c" else None


def page_data(report: GateReport, title: str, initial: dict | None = None, show: int | None = None) -> dict:
    """Everything the page script needs, JSON-ready. The coloured text is the first ``show``
    characters (default all); r, the snippets and the figures cover the whole text."""
    acts, feats = report.activations, report.features
    keys = acts.keys
    show = len(acts.text) if show is None else show
    data = {
        "title": title, "text": acts.text[:show], "kind": feats.kind, "features": list(feats.names),
        "keys": [list(k) for k in keys], "quantities": list(acts.quantities),
        "hidden": {f"{l},{d}": int(next(iter(acts.records[l, d].values())).shape[1]) for l, d in keys},
        "acts": {}, "corr": {},
        "top": [{"feature": u.feature, "layer": u.layer, "direction": u.direction, "quantity": u.quantity,
                 "unit": u.unit, "r": round(u.r, 4), "start": u.start, "snippet": u.snippet,
                 "values": _quantise(display_scale(u.quantity, u.values, _c_max(acts, u))).tolist()}
                for u in report.top_units],
        "spans": [{"layer": m.layer, "direction": m.direction, "gate": m.gate,
                   "span": np.round(m.span, 3).tolist()} for m in report.memory_spans],
    }
    corr = report.correlations
    for (l, d), rec in acts.records.items():
        for q, a in rec.items():
            shown = display_scale(q, a[:show], np.abs(a).max(0) if q == "c" else None)
            data["acts"][f"{l},{d},{q}"] = base64.b64encode(_quantise(shown).tobytes()).decode()
            data["corr"][f"{l},{d},{q}"] = np.round(corr[l, d, q], 3).tolist()
    if initial is None:
        best = max(report.top_units, key=lambda u: abs(u.r), default=None)
        l, d = keys[0]
        initial = ({"layer": best.layer, "direction": best.direction, "quantity": best.quantity, "unit": best.unit}
                   if best else {"layer": l, "direction": d, "quantity": acts.quantities[-1], "unit": 0})
    data["initial"] = initial
    return data


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _img(path: Path | None, alt: str) -> str:
    if path is None:
        return ""
    b64 = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def render(report: GateReport, title: str = "lstmkit inspect", pngs: dict[str, Path] | None = None,
           initial: dict | None = None, show: int | None = None) -> str:
    """The page as a string. ``pngs``: figure name -> PNG file, embedded as data: URIs;
    ``show``: characters of the text coloured on the page (default all)."""
    pngs = pngs or {}
    feats: TextFeatures = report.features
    n = len(report.activations.text)
    shown = n if show is None or show >= n else show
    subs = {
        "{{TITLE}}": html.escape(title),
        "{{SUMMARY}}": html.escape(f"{n} characters analysed, read as {feats.kind}"
                                   + (f", the first {shown} shown" if shown < n else "")
                                   + f"; features: {', '.join(feats.names)}"),
        "{{CSS}}": _asset("page.css"),
        "{{JS}}": _asset("page.js"),
        "{{DATA}}": json_for_script(page_data(report, title, initial, shown)),
        "{{IMG_SATURATION}}": _img(pngs.get("saturation"), "saturation per gate"),
        "{{IMG_MEMORY}}": _img(pngs.get("memory"), "memory span per unit"),
        "{{IMG_UNITS}}": _img(pngs.get("units"), "best unit per feature"),
    }
    # One pass, so a placeholder spelled inside the text or the data is never expanded.
    return re.sub(r"\{\{[A-Z_]+\}\}", lambda m: subs[m.group(0)], _asset("page.html"))


def write_html(report: GateReport, path: Path, title: str = "lstmkit inspect",
               pngs: dict[str, Path] | None = None, show: int | None = None) -> Path:
    Path(path).write_text(render(report, title, pngs, show=show), encoding="utf-8")
    return Path(path)
