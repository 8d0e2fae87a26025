"""Credentials in URLs and secret query values are masked wherever they appear in a text."""

from __future__ import annotations

import pytest

from pipeline.core.redact import mask_credentials


@pytest.mark.parametrize("text, masked", [
    ("rtsp://admin:pa55@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
    ("http://user@cam.local/video.mjpg", "http://***@cam.local/video.mjpg"),
    ("rtsp://u:p@ss:w@rd@host/s", "rtsp://***@host/s"),  # '@' and ':' inside the password
    ("http:/u:secret@host/x", "http:/***@host/x"),  # what Path() makes of http://
    ("http://cam/v.mjpg?token=abc123&fps=5", "http://cam/v.mjpg?token=***&fps=5"),
    ("http://cam/v?user=me&PASSWORD=hunter2#frag", "http://cam/v?user=me&PASSWORD=***#frag"),
    ("error: cannot open rtsp://a:b@h/s (refused); also ?api_key=K1", "error: cannot open rtsp://***@h/s (refused); also ?api_key=***"),
])
def test_credentials_are_masked(text: str, masked: str) -> None:
    assert mask_credentials(text) == masked


@pytest.mark.parametrize("text", [
    "http://cam.local:8080/video.mjpg?fps=5&size=640",
    "/home/user/videos/clip@2x.mp4",
    "person@2.0s crossed line 'gate'",
    "rtsp://10.0.0.5/stream",
])
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert mask_credentials(text) == text
