"""`report.html`: one self-contained page a person opens to see a whole run (no server, no network, no CDN).

Pictures are inlined as base64 so the file can be mailed or attached on its own; the annotated video is
inlined too while it is small (the sample clip's is ~0.4 MB), otherwise linked beside the page.
"""

from __future__ import annotations

import base64
import csv
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

EMBED_VIDEO_MAX_BYTES = 8_000_000  # a bigger annotated.mp4 is linked (same folder), not inlined

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;color:#1d2125}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:26px 0 8px;border-bottom:1px solid #ddd}
img,video{max-width:100%;height:auto;border:1px solid #ccc;border-radius:4px}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #e3e3e3;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.best{font-weight:600;background:#eaf6ea}
pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:13px;white-space:pre-wrap}.note{color:#666}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}@media(max-width:800px){.grid{grid-template-columns:1fr}}
"""


@dataclass
class ReportInputs:
    """Everything the page shows, already computed by the run."""

    source: str
    summary_lines: Sequence[str]
    class_counts: Mapping[str, tuple[int, int]]  # class -> (tracks, detections)
    scores_csv: Path | None
    pictures: Mapping[str, bytes]  # title -> PNG bytes
    poster_jpeg: bytes | None
    video: Path | None
    config_yaml: str
    files: Sequence[str] = field(default_factory=list)
    event_scores_csv: Path | None = None  # event_scores.csv: the alerts' reliability diagram (with --zones)
    counts_csv: Path | None = None  # counts.csv: the totals table
    events_csv: Path | None = None  # events.csv: a table filterable by kind


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], best: set[int] | frozenset[int] = frozenset()) -> str:
    """An HTML table; cells that look like numbers are right-aligned; rows in `best` are highlighted."""
    def cell(v: str) -> str:
        numeric = v.replace(".", "", 1).replace("-", "", 1).isdigit()
        return f"<td class=n>{html.escape(v)}</td>" if numeric else f"<td>{html.escape(v)}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(f"<tr{' class=best' if i in best else ''}>{''.join(cell(v) for v in r)}</tr>"
                   for i, r in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def scores_section(path: Path | None) -> str:
    """forecast_scores.csv as a table, the lowest ADE at each horizon highlighted."""
    if path is None or not path.exists():
        return "<p class=note>No forecast self-scores (forecast_scores.csv) were written.</p>"
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        return "<p class=note>No forecast was old enough to be scored yet.</p>"
    header, rows = rows[0], rows[1:]
    best: set[int] = set()
    if {"horizon_s", "ade_bh"} <= set(header):
        h, a = header.index("horizon_s"), header.index("ade_bh")
        for hz in {r[h] for r in rows}:
            cand = [(float(r[a]), i) for i, r in enumerate(rows) if r[h] == hz and r[a] not in ("", "nan")]
            if cand:
                best.add(min(cand)[1])
    note = ("<p class=note>Each predictor's own forecasts scored against what then happened: ADE/FDE are the mean/"
            "final displacement errors in body heights (lower is better); highlighted: best at each horizon. "
            "in_1sigma / in_2sigma: share of true positions inside the written 1-sigma (std) and 2-sigma (std2) "
            "ellipses, 0.393 and 0.865 when the spread is honest; nll: negative log-likelihood (lower is better); "
            "_raw: the trained spread before recalibration, on the same windows (spread_windows, after the "
            "warm-up).</p>")
    return note + _table(header, rows, best)


EVENTS_SHOWN = 2000  # events.csv rows put in the page (the file has them all)


def _csv_rows(path: Path | None) -> list[dict[str, str]] | None:
    if path is None or not path.exists():
        return None
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def counts_section(path: Path | None) -> str:
    """counts.csv's totals: per line, class and direction; per zone entries, exits, peak occupancy and dwell."""
    rows = _csv_rows(path)
    if rows is None:
        return ""
    total = [r for r in rows if r["period"] == "total"]
    if not total:
        return "<h2>Counts</h2><p class=note>Nothing crossed a line or entered a zone.</p>"
    body = [[r["kind"], r["name"], r["class_name"], r["direction"], r["count"] or r["occupancy_max"],
             r["dwell_median_s"], r["dwell_p90_s"]] for r in total]
    note = ("<p class=note>Each passage counted once (hysteresis); per interval of the run in counts.csv. "
            "count: crossings, entries or exits; for occupancy, the most inside at once.</p>")
    return "<h2>Counts</h2>" + note + _table(["kind", "name", "class", "direction", "count", "dwell median s",
                                              "dwell p90 s"], body)


def events_section(path: Path | None) -> str:
    """events.csv as a table with a filter by kind (plain JavaScript, no server, no network)."""
    rows = _csv_rows(path)
    if rows is None:
        return ""
    kinds = sorted({r["event"] for r in rows})
    shown = rows[:EVENTS_SHOWN]
    cols = ["time_s", "track_id", "other_id", "event", "name", "direction", "eta_s", "probability", "dwell_s"]
    options = "".join(f"<option>{html.escape(k)}</option>" for k in kinds)
    more = f" (the first {EVENTS_SHOWN} of {len(rows)}; events.csv has them all)" if len(rows) > EVENTS_SHOWN else ""
    script = ("<script>function filterEvents(k){for(const r of document.querySelectorAll('#events tr[data-kind]'))"
              "r.style.display=(!k||r.dataset.kind===k)?'':'none';}</script>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(f"<tr data-kind=\"{html.escape(r['event'])}\">" + "".join(
        f"<td>{html.escape(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in shown)
    return (f"<h2>Events</h2><p class=note>{len(rows)} events{more}. Show "
            f"<select id=kind onchange=\"filterEvents(this.value)\"><option value=''>all</option>{options}</select></p>"
            f"{script}<table id=events><tr>{head}</tr>{body}</table>")


def reliability_section(path: Path | None) -> str:
    """Alert probabilities against how often they came true (event_scores.csv), as an SVG diagram and a table."""
    if path is None or not path.exists():
        return ""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("name") == "*" and int(r.get("alerts") or 0)]
    if not rows:
        return "<h2>Alert reliability</h2><p class=note>No alert could be scored yet.</p>"
    bins = ("0_50", "50_70", "70_90", "90_100")
    size, pad = 260, 30
    colors = ("#d9480f", "#1971c2", "#2f9e44", "#9c36b5")

    def xy(p: float, q: float) -> str:
        return f"{pad + p * size:.1f},{pad + size - q * size:.1f}"

    marks, legend = [], []
    for k, r in enumerate(rows):
        pts = [(float(r[f"probability_{b}"]), float(r[f"came_true_{b}"]), int(r[f"alerts_{b}"]))
               for b in bins if int(r.get(f"alerts_{b}") or 0)]
        col = colors[k % len(colors)]
        marks += [f'<circle cx="{xy(p, q).split(",")[0]}" cy="{xy(p, q).split(",")[1]}" r="{3 + min(n, 100) ** 0.5:.1f}" '
                  f'fill="{col}" fill-opacity="0.6"><title>{html.escape(r["event"])}: {n} alerts said {p:.2f}, '
                  f"{q:.2f} came true</title></circle>" for p, q, n in pts]
        legend.append(f'<tspan fill="{col}" x="{pad + 4}" dy="14">{html.escape(r["event"])}</tspan>')
    svg = (f'<svg width="{size + 2 * pad}" height="{size + 2 * pad}" role="img" aria-label="alert reliability">'
           f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#999"/>'
           f'<line x1="{pad}" y1="{pad + size}" x2="{pad + size}" y2="{pad}" stroke="#999" stroke-dasharray="4"/>'
           f'{"".join(marks)}<text font-size="11" x="{pad}" y="{pad}">{"".join(legend)}</text>'
           f'<text font-size="11" x="{pad}" y="{size + 2 * pad - 6}">probability said (x) vs share that '
           "came true (y); on the dashed line when honest</text></svg>")
    table = _table(["event", "alerts", "mean probability", "came true", "Brier", "Brier of the raw share of paths"],
                   [[r["event"], r["alerts"], r["mean_probability"], r["precision"], r["brier"], r.get("brier_raw", "")]
                    for r in rows])
    return f"<h2>Alert reliability</h2>{svg}{table}"


def _media(inp: ReportInputs) -> str:
    """The annotated video (inlined when small, else linked) with the poster frame, or the poster alone."""
    poster = _data_uri("image/jpeg", inp.poster_jpeg) if inp.poster_jpeg else ""
    if inp.video is not None and inp.video.exists():
        small = inp.video.stat().st_size <= EMBED_VIDEO_MAX_BYTES
        src = _data_uri("video/mp4", inp.video.read_bytes()) if small else html.escape(inp.video.name)
        note = "" if small else f"<p class=note>The video is linked: keep {html.escape(inp.video.name)} beside this page.</p>"
        return (f'<video controls muted playsinline preload=auto poster="{poster}" src="{src}"></video>{note}')
    if poster:
        return f'<img alt="the frame with the most tracks, annotated" src="{poster}">'
    return "<p class=note>No frame to show.</p>"


def render_report(inp: ReportInputs) -> str:
    """The whole page as a string."""
    counts = [[name, str(t), str(d)] for name, (t, d) in sorted(inp.class_counts.items(), key=lambda kv: -kv[1][0])]
    pics = "".join(f'<figure><img alt="{html.escape(t)}" src="{_data_uri("image/png", png)}">'
                   f"<figcaption>{html.escape(t)}</figcaption></figure>" for t, png in inp.pictures.items())
    files = "".join(f"<li>{html.escape(f)}</li>" for f in inp.files)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>Run report: {html.escape(inp.source)}</title><link rel=icon href=\"data:,\"><style>{_CSS}</style></head><body>"
        f"<h1>Trajectory forecast run: {html.escape(Path(inp.source).name)}</h1>"
        f"<pre>{html.escape(chr(10).join(inp.summary_lines))}</pre>"
        f"<h2>Annotated video</h2>{_media(inp)}"
        f"<h2>The whole run</h2><div class=grid>{pics}</div>"
        f"<h2>Objects per class</h2>{_table(['class', 'tracks', 'detections in tracks'], counts)}"
        f"<h2>Forecast self-scores</h2>{scores_section(inp.scores_csv)}"
        f"{reliability_section(inp.event_scores_csv)}"
        f"{counts_section(inp.counts_csv)}"
        f"{events_section(inp.events_csv)}"
        f"<h2>Configuration</h2><pre>{html.escape(inp.config_yaml)}</pre>"
        f"<h2>Files</h2><ul>{files}</ul></body></html>"
    )
