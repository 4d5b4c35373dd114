"""The QC report's page: the numbers of :func:`plugin.report.build_report` as one HTML file.

No script, no external resource: CSS inline, charts as inline SVG (:mod:`plugin.report_svg`),
thumbnails referenced by their relative paths in the report folder.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from plugin.report_svg import (
    AFTER_COLOUR,
    BEFORE_COLOUR,
    MEASURED_COLOUR,
    SERIES_COLOURS,
    Chart,
    Mark,
    Series,
    chart_svg,
    legend_svg,
)

#: Gain of the difference thumbnail (|after - before| x gain); the report writes them so.
DIFF_GAIN = 4
ANGLES = ("yaw", "pitch", "roll")
AFTER_LABEL, MEASURED_LABEL, BEFORE_LABEL = "after (planned)", "after (measured on the output)", "before (tracked)"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#212529;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dee2e6;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.meta{color:#495057}.meta code{background:#f1f3f5;padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #dee2e6;padding:3px 9px;text-align:left}th{background:#f8f9fa}
.charts{display:flex;flex-wrap:wrap;gap:6px 14px}.chart{background:#fff}
.chart .tick{font-size:10px;fill:#495057}.chart .ctitle{font-size:12px;font-weight:600;fill:#212529}.chart .legend{font-size:11px;fill:#343a40}
.thumbs{display:flex;flex-wrap:wrap;gap:18px}figure{margin:0;border:1px solid #dee2e6;padding:8px;border-radius:4px;background:#f8f9fa}
figure .row{display:flex;gap:6px}figure .cell{text-align:center;font-size:12px;color:#495057}
figure img{display:block;width:176px;height:auto;image-rendering:auto;border:1px solid #adb5bd;background:#000}figcaption{font-size:12px;margin-top:6px;color:#343a40}
.key{display:inline-block;width:14px;height:10px;margin:0 4px 0 10px;vertical-align:middle}.note{color:#868e96;font-size:12px}
.clamp{color:#c92a2a}.k{display:inline-block;margin-right:6px}.legendrow{display:flex;align-items:center;gap:8px;margin:2px 0 8px}
.legendrow .legend{font-size:12px;fill:#343a40}
"""


def _charts_for(face: dict[str, Any], frame_count: int) -> list[str]:
    x = np.arange(frame_count)
    shaded = [tuple(r) for r in face["edited_ranges"]]
    marks = [Mark(c["frames"][0], c["frames"][1], f"clamp: {c['delta']} frames {c['frames'][0]}-{c['frames'][1]}, "
                  f"asked {c['requested']}, applied {c['applied']}") for c in face["clamps"]]
    dom = (0.0, float(max(frame_count - 1, 1)))

    def arr(v: list[float | None]) -> NDArray[np.float64]:
        return np.array([np.nan if a is None else a for a in v], np.float64)

    def pair(title: str, unit: str, data: dict[str, list[float | None]], y_range: tuple[float, float] | None = None) -> str:
        series = [Series(AFTER_LABEL, arr(data["after"]), AFTER_COLOUR, 2.0)]
        if "measured" in data:
            series.append(Series(MEASURED_LABEL, arr(data["measured"]), MEASURED_COLOUR, 1.3))
        series.append(Series(BEFORE_LABEL, arr(data["before"]), BEFORE_COLOUR, 1.5, True))
        return chart_svg(Chart(title, unit, x, series, shaded, marks, y_range, dom, legend=False))

    out = [pair(f"{a} (degrees)", "°", face["angles_deg"][a]) for a in ANGLES]
    out += [pair(f"{n} (score)", "", d, (0.0, 1.0)) for n, d in face["blendshapes"].items()]
    limits = face.get("max_strengths", {})
    strengths = [Series(n if len(n) < 40 else "…" + n[-38:], arr(s) / limits.get(n, 1.0),
                        SERIES_COLOURS[i % len(SERIES_COLOURS)]) for i, (n, s) in enumerate(face["strengths"].items())]
    if strengths:
        out.append(chart_svg(Chart("strength ÷ documented max", "", x, strengths, shaded, marks, None, dom)))
    out.append(chart_svg(Chart("mean landmark shift (frame pixels)", "", x,
                               [Series("after − before", arr(face["landmark_shift_px"]), AFTER_COLOUR)],
                               shaded, marks, None, dom)))
    return out


def _key(colour: str, text: str) -> str:
    return f"<span class='k'><span class='key' style='background:{colour}'></span>{html.escape(text)}</span>"


def render_html(report: Mapping[str, Any]) -> str:
    """The report page (no script, no external resource) for :func:`build_report`'s dict."""
    e = html.escape
    n = report["frame_count"]
    keys = [(BEFORE_COLOUR, "before: the tracked face"), (AFTER_COLOUR, "after: " + report["after_values"])]
    if report.get("measured_values"):
        keys.append((MEASURED_COLOUR, "measured: " + report["measured_values"]))
    keys += [("#ffd8a8", "edited frames"), ("#c92a2a", "clamp")]
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width,initial-scale=1'>",
             f"<title>deltaface QC report: {e(Path(report['output']).name)}</title><style>{_CSS}</style></head><body>",
             "<h1>deltaface QC report</h1>",
             f"<div class='meta'>input <code>{e(report['input'])}</code> → output <code>{e(report['output'])}</code>, "
             f"{n} frames.<br>" + "".join(_key(c, t) for c, t in keys) + "</div>"]
    rows = "".join(
        f"<tr><td>{f['face']}</td><td>{e(', '.join(f'{a}-{b}' for a, b in f['edited_ranges']))}</td>"
        f"<td>{e(', '.join(f['strengths']))}</td><td>{f['max_landmark_shift_px']:.2f} px</td>"
        f"<td{' class=clamp' if f['clamps'] else ''}>{len(f['clamps'])}</td></tr>" for f in report["faces"])
    parts.append("<h2>Summary</h2><table><tr><th>face</th><th>edited frames</th><th>deltas</th>"
                 f"<th>largest mean landmark shift</th><th>clamps</th></tr>{rows}</table>")
    clamp_rows = "".join(
        f"<tr><td>{f['face']}</td><td>{e(c['delta'])}</td><td>{c['frames'][0]}-{c['frames'][1]}</td>"
        f"<td>{c['requested']}</td><td>{c['applied']}</td></tr>" for f in report["faces"] for c in f["clamps"])
    if clamp_rows:
        parts.append("<h3 class='clamp'>Clamp events</h3><table><tr><th>face</th><th>delta or limit</th>"
                     f"<th>frames</th><th>asked</th><th>applied</th></tr>{clamp_rows}</table>")
    parts.extend(_texture_section(report.get("summary", {}).get("texture", [])))
    parts.extend(_occluder_section(report.get("summary", {}).get("occluders", [])))
    if report["thumbnails"]:
        parts.append("<h2>Most-changed frames</h2><p class='note'>Face crops decoded from the input (before) and the "
                     f"written output (after); the third image is |after − before| × {DIFF_GAIN}.</p><div class='thumbs'>")
        for p in report["thumbnails"]:
            cells = "".join(f"<div class='cell'><img src='{e(p[k])}' alt='frame {p['frame']} {k}'>{k}</div>"
                            for k in ("before", "after", "diff") if k in p)
            parts.append(f"<figure><div class='row'>{cells}</div><figcaption>frame {p['frame']} ({p['time_s']:.2f} s), "
                         f"face {p['face']}: mean landmark shift {p['landmark_shift_px']:.2f} px, largest pixel change "
                         f"{p.get('max_abs_pixel_change', '?')}</figcaption></figure>")
        parts.append("</div>")
    for face in report["faces"]:
        keys = [Series(AFTER_LABEL, [], AFTER_COLOUR)]
        if "measured" in face["angles_deg"]["yaw"]:
            keys.append(Series(MEASURED_LABEL, [], MEASURED_COLOUR))
        keys.append(Series(BEFORE_LABEL, [], BEFORE_COLOUR, dashed=True))
        measured = face.get("measured_track")
        note = "" if "measured_track" not in face else (
            f" (output track {measured['id']}, mean box overlap {measured['mean_box_iou']:.2f})" if measured
            else " (no track of the output overlaps this face: not measured)")
        parts.append(f"<h2>Face {face['face']}</h2><div class='legendrow'>{legend_svg(keys)}"
                     f"<span class='note'>{e(note)}</span></div><div class='charts'>")
        parts.extend(_charts_for(face, n))
        parts.append("</div>")
    parts.append(f"<p class='note'>Numbers: report.json beside this page (format deltaface-report, version "
                 f"{report['version']}).</p></body></html>")
    return "".join(parts)


def _occluder_section(events: list[dict[str, Any]]) -> list[str]:
    """Where something covered an edited face and kept its pixels through the edit."""
    if not events:
        return []
    rows = "".join(f"<tr><td>{o['face']}</td><td>{o['frames'][0]}-{o['frames'][1]}</td><td>{100 * o['share']:.0f}%</td></tr>"
                   for o in events)
    return ["<h3>What covers the face</h3><p class='note'>Found in front of the edited face (a hand, a microphone): "
            "these pixels keep the input's bytes through the edit. Check them in the thumbnails; "
            "<code>--no-occluders</code> edits through them.</p><table><tr><th>face</th><th>frames</th>"
            f"<th>largest share of the face</th></tr>{rows}</table>"]


def _texture_section(events: list[dict[str, Any]]) -> list[str]:
    """Where region textures came from (texture from other frames), and where the edit was clamped
    or left to the warp for want of an exemplar."""
    if not events:
        return []
    e = html.escape
    rows = []
    for t in events:
        if t["action"] == "texture":
            detail = ", ".join(f"{a}-{b}: {src}" for a, b, src in t.get("runs", [])) or ", ".join(t.get("exemplars", []))
        else:
            detail = t.get("reason", "")
            if "factor" in t:
                detail += f" (strength x {t['factor']})"
        cls = " class=clamp" if t["action"] == "clamp" else ""
        rows.append(f"<tr><td>{t['face']}</td><td>{e(t['region'])}</td><td>{t['frames'][0]}-{t['frames'][1]}</td>"
                    f"<td{cls}>{e(t['action'])}</td><td>{e(detail)}</td></tr>")
    return ["<h3>Texture from other frames</h3><table><tr><th>face</th><th>region</th><th>frames</th><th>action</th>"
            f"<th>source frames, or why not</th></tr>{''.join(rows)}</table>"]
