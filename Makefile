# Two commands do everything: `make setup` (idempotent) and `make test`.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SOURCE ?=
SAMPLE := samples/people_walking_768x432.mp4
ARGS ?=

.PHONY: setup test lint run gallery train own-tracks bench-forecast bench-events bench-videos bench-calibration bench-conflicts clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	command -v Xvfb >/dev/null && command -v xdotool >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xdotool >/dev/null) || \
	  echo "warning: could not install xvfb/xdotool; the live window test will fail" >&2
	test -x /usr/bin/chromium || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "warning: could not install chromium; the report.html browser test will be skipped" >&2
	test -x /usr/sbin/mosquitto || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null) || \
	  echo "warning: could not install mosquitto; the MQTT tests will be skipped" >&2
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --upgrade -q pip
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(VPY) -m pip install -q -r requirements.txt
	$(VPY) -m pip install -q --no-deps --no-build-isolation -e .  # the project (trajpred command); the pins rule
	touch $(STAMP)

# everything: ruff, mypy on pipeline/ (mypy.ini), and every test (the realdata ones need ../shared)
test: setup
	YOLO_OFFLINE=1 $(VPY) -m ruff check pipeline tests run.py
	$(VPY) -m mypy pipeline
	YOLO_OFFLINE=1 $(VPY) -m pytest -q tests

# the fast tier: no ../shared needed (the shipped sample clip and weights are enough), no test over ~5 s
.PHONY: test-fast
test-fast: setup
	YOLO_OFFLINE=1 $(VPY) -m pytest -q -m "not realdata and not slow" tests

lint: setup
	$(VPY) -m ruff check pipeline tests run.py

# without SOURCE: the shipped sample clip (samples/) with the shipped detector (weights/): works offline
run: setup
	YOLO_OFFLINE=1 $(VPY) run.py track --source "$(or $(SOURCE),$(SAMPLE))" $(ARGS)

# the README gallery (docs/gallery/: an annotated frame, trajectories.png, heatmap.png) from the sample clip
gallery: setup
	YOLO_OFFLINE=1 $(VPY) run.py track --source $(SAMPLE) --out runs/gallery --overwrite --quiet
	$(VPY) docs/make_gallery.py runs/gallery docs/gallery

VIDEOS := vtest_pets2009_480x360.avi street_traffic_640x360.mp4 oxford_street_pedestrians_1080p.mp4 intel_one-by-one-person-detection.mp4 yellow_crosswalk_640x360.mp4
DETECTOR ?= ../shared/weights/yolo11n_int8_dynamic_openvino_model

# tracks.csv of every shared video into runs/own/<video>/ (training and benchmark data)
own-tracks: setup
	for v in $(VIDEOS); do YOLO_OFFLINE=1 $(VPY) run.py track --source ../shared/data/videos/$$v --weights $(DETECTOR) \
	  --predictor kalman --no-video --quiet --overwrite --out runs/own/$${v%.*} || exit 1; done

# the shipped universal model from every source (needs own-tracks first); writes weights/traj_lstm.pt
train: setup
	YOLO_OFFLINE=1 $(VPY) run.py train --config configs/train.yaml --overwrite

# the forecasts `track` writes with default settings, scored on every shared video (about 10 min)
bench-videos: setup
	YOLO_OFFLINE=1 $(VPY) benchmarks/video_scores.py

# leave-one-source-out benchmark: lstm vs tuned cv and kalman on every source it never saw (about 40 min)
bench-forecast: setup
	YOLO_OFFLINE=1 $(VPY) run.py bench-forecast --out benchmarks/forecast_loso.json

# zone/line alerts on the yellow crossing video: served forecast vs constant velocity (a few minutes)
bench-events: setup
	YOLO_OFFLINE=1 $(VPY) benchmarks/events_crosswalk.py

# predicted conflicts on DUT: the alert rules with a true-future forecast vs cv, kalman, auto, and what limits them
# (tables for benchmarks/conflict_ceiling.md; about 2 hours on 2 vCPUs, runs cached in runs/conflict_ceiling.json)
bench-conflicts: setup
	mkdir -p runs
	YOLO_OFFLINE=1 $(VPY) benchmarks/conflict_ceiling.py --thresholds 0.3,0.7,0.9 --persist 0.4 --mean-only | tee runs/conflict_ceiling.md

# are the spreads and alert probabilities honest? before/after recalibration on every source and video (about 40 min)
bench-calibration: setup
	YOLO_OFFLINE=1 $(VPY) benchmarks/calibration.py | tee benchmarks/calibration.md
	YOLO_OFFLINE=1 $(VPY) benchmarks/calibration_streams.py --minutes 10 | tee benchmarks/calibration_streams.md

clean:
	rm -rf $(VENV) runs .pytest_cache
