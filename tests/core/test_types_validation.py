"""The stage types convert what they are given and refuse inconsistent shapes at construction."""

import numpy as np
import pytest

from pipeline.core.types import Detections, Forecasts, Tracks


def test_inputs_are_converted_to_the_documented_dtypes_and_shapes():
    t = Tracks([[1, 2, 3, 4]], [[0.5]], [[2.0]], [[7]])  # lists and extra nesting are flattened
    assert t.xyxy.dtype == np.float32 and t.confidence.shape == (1,) and t.class_id.dtype == np.int64
    assert t.track_id.tolist() == [7] and t.track_id.dtype == np.int64
    empty = Detections.empty()
    assert empty.xyxy.shape == (0, 4) and len(empty) == 0
    assert Detections([], [], []).xyxy.shape == (0, 4)  # an empty list is no boxes, not a shape error


def test_forecasts_reshape_optional_arrays_and_refuse_std2_without_std():
    f = Forecasts([4, 5], [0.5, 1.0], np.arange(8), boxes=np.zeros(16), std=np.ones(8), std2=2 * np.ones(8))
    assert f.centers.shape == (2, 2, 2) and f.boxes.shape == (2, 2, 4) and f.std2.shape == (2, 2, 2)
    assert f.centers[1, 0].tolist() == [4.0, 5.0] and len(f) == 2
    with pytest.raises(ValueError, match="std2"):
        Forecasts([4], [0.5], np.zeros((1, 1, 2)), std2=np.ones((1, 1, 2)))
    with pytest.raises(ValueError):
        Forecasts([4], [0.5, 1.0], np.zeros((1, 2, 2)), boxes=np.zeros((1, 2, 2)))  # boxes need 4 numbers
    with pytest.raises(ValueError, match="strictly increasing"):
        Forecasts([4], [0.5, 0.5], np.zeros((1, 2, 2)))


def test_empty_forecasts_keep_the_time_grid():
    f = Forecasts.empty(np.array([0.4, 0.8, 1.2]))
    assert len(f) == 0 and f.centers.shape == (0, 3, 2) and f.t_future_s.tolist() == [0.4, 0.8, 1.2]
