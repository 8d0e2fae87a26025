"""`calibrate`: fit and check a camera's image-to-ground calibration, optionally drawn on one of its frames."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.apps.cli import common

NAME = "calibrate"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        NAME, help="fit and check an image-to-ground calibration",
        description="Fit the image-to-ground homography of a camera YAML file (image_points + world_points, at least "
        "4 pairs, OpenCV findHomography with RANSAC) and print the reprojection error of every pair in metres; or "
        "check a scale-only camera (metres_per_pixel or pixels_per_metre). Use the file with --camera on track/live.",
        parents=[common.camera(required=True)],
    )
    p.add_argument("--image", help="a frame of the camera (PNG/JPEG): draw the fitted metre grid and the pairs on it")
    p.add_argument("--out", help="where to write that picture (default: <image>_calibration.png beside it)")


def run(a: argparse.Namespace) -> int:
    import numpy as np

    from pipeline.core.config import CameraConfig
    from pipeline.events.calibration import camera_from_config

    common.input_paths(a.camera)
    camera, report = camera_from_config(common.side_file(a.camera, CameraConfig, "--camera"))
    if report is None:
        print(f"scale camera: {camera.H[0, 0]:.6g} m per pixel ({1 / camera.H[0, 0]:.4g} pixels per metre)")
        return 0
    print("\n".join(report.lines()))
    print("image -> ground homography (pixels (x, y, 1) -> metres):")
    print(np.array2string(camera.H / camera.H[2, 2], precision=8, suppress_small=False))
    if a.image:
        print(f"wrote {_picture(a, camera)}")
    return 0


def _picture(a: argparse.Namespace, camera: Any) -> Path:
    """The frame with the fitted grid and the pairs (calibrate --image), never written over an input."""
    import cv2
    import numpy as np

    from pipeline.core.config import CameraConfig
    from pipeline.core.errors import UserError
    from pipeline.events.calibration import draw_calibration

    common.input_paths(a.image)
    frame = cv2.imread(a.image, cv2.IMREAD_COLOR)
    if frame is None:
        raise UserError(f"--image {a.image} is not an image OpenCV can read; give a PNG or JPEG frame of the camera")
    src = Path(a.image)
    out = Path(a.out) if a.out else src.with_name(f"{src.stem}_calibration.png")
    if out.resolve() in {src.resolve(), Path(a.camera).resolve()}:
        raise UserError(f"--out {out} is an input; give another path")
    cfg = common.side_file(a.camera, CameraConfig, "--camera")
    drawn = draw_calibration(frame, camera, np.array(cfg.image_points, float), np.array(cfg.world_points, float))
    if not cv2.imwrite(str(out), drawn):
        raise UserError(f"cannot write {out}; check the folder exists and is writable")
    return out
