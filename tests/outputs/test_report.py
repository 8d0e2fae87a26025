"""The offline first run and what it leaves to look at: PNGs and a report.html that a real browser shows."""

from __future__ import annotations

import re
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from pipeline.outputs.report import ReportInputs, render_report
from tests.conftest import ROOT, run_cli

SAMPLE = ROOT / "samples" / "people_walking_768x432.mp4"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """`track` as a fresh clone runs it: the shipped sample clip and the default (shipped) detector, from /."""
    out = tmp_path_factory.mktemp("first") / "run"
    proc = run_cli("track", "--source", str(SAMPLE), "--max-frames", "60", "--out", str(out), "--quiet", cwd=Path("/"))
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_first_run_needs_only_what_the_repo_ships(sample_run):
    out, proc = sample_run
    assert "processed 60 frames" in proc.stdout and proc.stderr.strip() == ""
    with av.open(str(out / "annotated.mp4")) as c:
        st = c.streams.video[0]
        assert (st.codec_context.name, st.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert sum(1 for _ in c.decode(st)) == 60
    for name in ("tracks.csv", "predictions.csv", "trajectories.png", "heatmap.png", "report.html"):
        assert (out / name).stat().st_size > 0, name
        assert f"wrote {out / name}" in proc.stdout


def test_pictures_have_the_frame_size(sample_run):
    out, _ = sample_run
    for name in ("trajectories.png", "heatmap.png"):
        img = cv2.imread(str(out / name))
        assert img is not None and img.shape == (432, 768, 3), name


def test_report_is_self_contained(sample_run):
    out, _ = sample_run
    page = (out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page), "the report must not fetch anything"
    assert page.count('src="data:image/png;base64,') == 2 and 'src="data:video/mp4;base64,' in page
    for text in ("processed 60 frames", "person", "ADE", "detector:", "crf: 26"):
        assert text in page, text


def test_text_in_the_report_is_escaped():
    inp = ReportInputs(source="<script>alert(1)</script>.mp4", summary_lines=["a < b"], class_counts={"<b>": (1, 2)},
                       scores_csv=None, pictures={}, poster_jpeg=None, video=None, config_yaml="x: '<i>'")
    page = render_report(inp)
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>" not in page and "<i>" not in page


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make setup installs it)")
def test_report_opens_in_chromium_with_images_a_playing_video_and_no_errors(sample_run):
    """Debian's chromium driven by Playwright (never a downloaded browser): what a person opening the file sees."""
    from playwright.sync_api import sync_playwright

    out, _ = sample_run
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:80]}"))
            page.goto((out / "report.html").as_uri(), wait_until="load")
            images = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
            played = page.evaluate("""async () => {
                const v = document.querySelector('video');
                if (v.readyState < 2) await new Promise((ok, bad) => {
                    v.addEventListener('loadeddata', ok); v.addEventListener('error', () => bad(String(v.error && v.error.code)));
                });
                await v.play();
                const t0 = v.currentTime;
                await new Promise(r => setTimeout(r, 500));
                return [v.error === null, v.currentTime > t0, v.videoWidth, v.videoHeight, v.duration];
            }""")
        finally:
            browser.close()
    assert len(images) == 2 and all(ok and w == 768 and h == 432 for ok, w, h in images), images
    assert played[:4] == [True, True, 768, 432] and 5.5 < played[4] < 6.5, played
    assert problems == []


def test_heatmap_is_brightest_where_objects_stood():
    from pipeline.outputs.plots import RunPictures
    from pipeline.core.types import Forecasts, Tracks

    pics = RunPictures((320, 240))
    image = np.full((240, 320, 3), 90, np.uint8)
    empty = Forecasts.empty(np.array([0.4]))
    for i in range(40):
        x = 40 + 2 * i if i < 20 else 200  # walks right, then stands at x=200 with its feet at y=200
        pics.add(i * 0.1, Tracks(np.array([[x - 10, 150, x + 10, 200]]), np.array([0.9]), np.array([0]), np.array([1])),
                 empty)
        pics.add_image(i, image)
    heat = pics.heatmap()
    lum = cv2.cvtColor(heat, cv2.COLOR_BGR2GRAY).astype(int)
    assert lum[200, 200] > lum[200, 60] > lum[100, 60]
    assert pics.class_counts({0: "person"}) == {"person": (1, 40)}
    assert len(pics._samples) < 14 and pics.trajectories().shape == (240, 320, 3)


def test_run_pictures_stay_bounded_on_an_endless_run(monkeypatch):
    """A live run has no end: track points and forecast moments are thinned at a bound, first and last kept."""
    import numpy as np

    from pipeline.core.types import Forecasts, Tracks
    from pipeline.outputs import plots

    monkeypatch.setattr(plots, "MAX_PATH_POINTS", 500)
    monkeypatch.setattr(plots, "MAX_SNAPSHOTS", 8)
    pics = plots.RunPictures((640, 480))
    for k in range(3000):  # 5 minutes at 10 fps, 4 people walking
        t = k / 10
        xy = np.array([[50 + (k % 500) + 30 * i, 100 + 60 * i] for i in range(4)], float)
        tracks = Tracks(np.hstack([xy - 10, xy + 10]), np.ones(4), np.zeros(4), np.arange(1, 5))
        fc = Forecasts(np.arange(1, 5), [0.4, 0.8], np.stack([xy + 5, xy + 10], axis=1))
        pics.add(t, tracks, fc)
        pics.add_image(k, np.full((480, 640, 3), k % 255, np.uint8))
    points = sum(len(p) for p in pics.paths.values())
    assert points <= 500 + 4 and points > 100
    assert pics.paths[1][0] == (50.0, 100.0)  # the first point survives thinning
    assert len(pics.snapshots) <= 8 + 1 and pics.snapshots[-1].time_s > 200
    assert pics.trajectories().shape == (480, 640, 3)


def _write(path, header: list[str], rows: list[list[str]]) -> None:
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make setup installs it)")
def test_report_shows_the_counts_and_an_events_table_a_person_can_filter(tmp_path):
    from playwright.sync_api import sync_playwright

    from pipeline.events.counts import COUNT_COLUMNS
    from pipeline.events.types import EVENT_COLUMNS

    _write(tmp_path / "counts.csv", COUNT_COLUMNS, [
        ["0", "0.000", "60.000", "line", "gate", "person", "north", "7", "", "", ""],
        ["total", "0.000", "60.000", "line", "gate", "person", "north", "7", "", "", ""],
        ["total", "0.000", "60.000", "zone", "shop", "person", "exit", "3", "", "12.500", "20.000"]])
    _write(tmp_path / "events.csv", EVENT_COLUMNS, [
        ["1", "0.1000", "5", "", "line_cross", "gate", "", "", "", "north", ""],
        ["2", "0.2000", "6", "", "zone_exit", "shop", "", "", "", "out", "12.500"],
        ["3", "0.3000", "5", "", "line_cross", "gate", "", "", "", "south", ""]])
    inp = ReportInputs(source="x.mp4", summary_lines=[], class_counts={}, scores_csv=None, pictures={},
                       poster_jpeg=None, video=None, config_yaml="", counts_csv=tmp_path / "counts.csv",
                       events_csv=tmp_path / "events.csv")
    (tmp_path / "report.html").write_text(render_report(inp), encoding="utf-8")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto((tmp_path / "report.html").as_uri(), wait_until="load")
            counts = page.locator("h2:text('Counts') + p + table tr").all_inner_texts()
            visible = "[...document.querySelectorAll('#events tr[data-kind]')].filter(r => r.style.display !== 'none').length"
            before = page.evaluate(visible)
            page.select_option("#kind", "line_cross")
            after = page.evaluate(visible)
        finally:
            browser.close()
    assert len(counts) == 3 and "north\t7" in counts[1] and "12.500\t20.000" in counts[2]  # the totals only
    assert (before, after) == (3, 2)
