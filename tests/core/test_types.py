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


def test_forecasts_to_dataframe_is_predictions_csv(tmp_path):
    """to_dataframe(): predictions.csv's columns and rows (the CSV rounds; empty cells are NaN in both)."""
    import pandas as pd

    from pipeline.io.writers import PREDICTION_COLUMNS, PredictionsCsv

    rng = np.random.default_rng(0)
    t = np.array([0.4, 0.8, 1.2])
    fc = Forecasts([7, 3], t, rng.uniform(0, 600, (2, 3, 2)), boxes=rng.uniform(0, 600, (2, 3, 4)),
                   std=rng.uniform(1, 9, (2, 3, 2)))  # no std2: its columns are empty
    tracks = Tracks(np.array([[0, 0, 10, 20], [10, 10, 30, 30]]), [0.9, 0.8], [0, 2], [3, 7])
    path = tmp_path / "predictions.csv"
    with PredictionsCsv(path, names={0: "person", 2: "car"}) as sink:
        sink.write(12, 0.4, fc, tracks=tracks)
    df = fc.to_dataframe(0.4, 12, class_names={3: "person", 7: "car"})
    assert isinstance(df, pd.DataFrame) and list(df.columns) == PREDICTION_COLUMNS
    csv = pd.read_csv(path, keep_default_na=False, na_values=[""])
    assert len(df) == len(csv) == 6
    assert df["class_name"].tolist() == csv["class_name"].tolist() == ["car"] * 3 + ["person"] * 3
    numbers = [c for c in PREDICTION_COLUMNS if c != "class_name"]
    pd.testing.assert_frame_equal(df[numbers].astype(float), csv[numbers].astype(float), atol=0.005, rtol=0)
