import numpy as np
import pytest

from pipeline.core.types import Detections, Forecasts, Frame, Tracks


def test_detections_validate_shapes():
    d = Detections(np.zeros((2, 4)), [0.5, 0.6], [0, 2])
    assert len(d) == 2 and d.xyxy.dtype == np.float32
    with pytest.raises(ValueError):
        Detections(np.zeros((2, 3)), [0.5, 0.6], [0, 2])
    with pytest.raises(ValueError):
        Detections(np.zeros((2, 4)), [0.5], [0, 2])


def test_tracks_centers_and_ids():
    t = Tracks(np.array([[0, 0, 10, 20], [10, 10, 30, 30]]), [0.9, 0.8], [0, 0], [3, 7])
    assert t.centers.tolist() == [[5, 10], [20, 20]]
    with pytest.raises(ValueError):
        Tracks(np.zeros((2, 4)), [1, 1], [0, 0], [1])
    assert len(Tracks.empty()) == 0


def test_forecasts_shapes_and_time_order():
    f = Forecasts([1, 2], [0.1, 0.2, 0.3], np.zeros((2, 3, 2)))
    assert f.centers.shape == (2, 3, 2) and f.boxes is None
    with pytest.raises(ValueError):
        Forecasts([1], [0.2, 0.1], np.zeros((1, 2, 2)))
    with pytest.raises(ValueError):
        Forecasts([1, 2], [0.1], np.zeros((3, 1, 2)))


def test_frame_needs_colour_image():
    assert Frame(0, 0.0, np.zeros((4, 6, 3), np.uint8)).size == (6, 4)
    with pytest.raises(ValueError):
        Frame(0, 0.0, np.zeros((4, 6), np.uint8))
