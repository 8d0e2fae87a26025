"""`batch`: many videos, one Ray task each, resumable through a manifest (batch.json).

Each video runs the same `run_track` as the `track` command, in a Ray worker process (Ray reuses a worker
for later videos, so the libraries and model runtime load once per worker). A video's folder is written
under a temporary name (`.NAME.partial`) and renamed when whole, so a folder under --out is complete or
absent. A worker that dies is retried by Ray on another worker; a video that fails (corrupt, unreadable) is
reported in one line and the others go on. batch.json records, per video, the input hash (sha256 of the
file size and its first and last MiB), the config hash, status, frames, seconds and error: a rerun skips the
videos finished with the same inputs and settings.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import functools
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tqdm import tqdm

from pipeline.core import resources
from pipeline.core.atomic import write_atomic
from pipeline.core.config import TrackRunConfig
from pipeline.core.errors import UserError
from pipeline.core.redact import mask_credentials

if TYPE_CHECKING:
    from pipeline.apps.processing import DetectorCache

MANIFEST = "batch.json"
DATASET = "dataset"
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv",
                        ".mjpeg", ".mjpg", ".3gp"})
RESERVED = frozenset({DATASET, MANIFEST})
HASH_BYTES = 1 << 20  # the input hash reads the first and the last MiB
RETRIES = 3  # Ray re-runs a video whose worker died this many times


@dataclass(frozen=True)
class BatchOptions:
    """What the user asked for on the command line."""

    source: str  # a folder, a glob pattern, a .txt list (one path a line) or one video
    out: Path
    workers: int = 0  # videos at a time; 0: the machine's (or the cluster's) cores
    address: str = ""  # join this Ray cluster ("" : start Ray in this process)
    force: bool = False  # redo the videos already finished
    quiet: bool = False
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise UserError(f"--workers must be >= 1, got {self.workers}")
        if self.max_frames is not None and self.max_frames < 1:
            raise UserError("--max-frames must be >= 1")


@dataclass(frozen=True)
class VideoJob:
    """One video to process: where it is, its folder name under --out, and what makes its result reusable."""

    source: Path
    name: str
    input_hash: str
    config_hash: str
    frames: int = 0  # the header's frame count (within --max-frames), for the batch bar


@dataclass
class VideoOutcome:
    """One video's result, as batch.json records it."""

    name: str
    source: str
    status: str  # done, failed, skipped or interrupted
    input_hash: str = ""
    config_hash: str = ""
    frames: int = 0
    seconds: float = 0.0
    error: str = ""
    finished: str = ""  # UTC time the video was finished

    def line(self) -> str:
        if self.status == "failed":
            return f"{self.name}: FAILED: {self.error}"
        if self.status == "skipped":
            return f"{self.name}: skipped (finished earlier with the same input and settings)"
        fps = self.frames / self.seconds if self.seconds > 0 else 0.0
        return f"{self.name}: {self.status}, {self.frames} frames in {self.seconds:.1f} s ({fps:.1f} fps)"


@dataclass
class BatchResult:
    """Every video's outcome and the batch's totals."""

    outcomes: list[VideoOutcome] = field(default_factory=list)
    seconds: float = 0.0
    dataset: Path | None = None

    @property
    def failed(self) -> list[VideoOutcome]:
        return [o for o in self.outcomes if o.status != "done" and o.status != "skipped"]

    def lines(self) -> list[str]:
        n = {s: sum(o.status == s for o in self.outcomes) for s in ("done", "skipped")}
        frames = sum(o.frames for o in self.outcomes if o.status == "done")
        fps = frames / self.seconds if self.seconds > 0 else 0.0
        out = [f"batch: {len(self.outcomes)} videos: {n['done']} done, {n['skipped']} skipped, {len(self.failed)} failed; "
               f"{frames} frames in {self.seconds:.1f} s ({fps:.1f} fps over the batch)"]
        out += [f"failed: {o.name}: {o.error}" for o in self.failed]
        if self.dataset is not None:
            out.append(f"dataset (all videos, partitioned by video): {self.dataset}")
        return out


def list_videos(spec: str) -> list[Path]:
    """--source as video paths: a folder's video files, a glob's matches, a .txt list's lines, or one file."""
    p = Path(spec).expanduser()
    if p.is_dir():
        found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTS)
        if not found:
            raise UserError(f"--source {spec} holds no video files ({', '.join(sorted(VIDEO_EXTS))})")
        return found
    if p.suffix.lower() == ".txt" and p.is_file():
        lines = [ln.strip() for ln in p.read_text(encoding="utf-8", errors="replace").splitlines()]
        found = [(p.parent / ln).expanduser() for ln in lines if ln and not ln.startswith("#")]
        if not found:
            raise UserError(f"--source {spec} lists no videos (one path a line; # starts a comment)")
        return found
    if any(c in spec for c in "*?["):
        found = sorted(Path(f) for f in glob.glob(os.path.expanduser(spec), recursive=True) if Path(f).is_file())
        if not found:
            raise UserError(f"--source {spec} matches no file")
        return found
    if p.is_file():
        return [p]
    raise UserError(f"--source {spec} is not a folder, a glob pattern, a .txt list or a video file")


def folder_names(videos: list[Path]) -> list[str]:
    """A folder name per video: its file name's stem, made safe; clashes get a short hash of the path."""
    stems = [re.sub(r"[^A-Za-z0-9._-]", "_", v.stem).strip(".") or "video" for v in videos]
    names = []
    for v, s in zip(videos, stems):
        clash = stems.count(s) > 1 or s in RESERVED
        names.append(f"{s}_{hashlib.sha1(str(v.resolve()).encode()).hexdigest()[:8]}" if clash else s)
    return names


def input_hash(path: Path) -> str:
    """sha256 of the file size and its first and last MiB: cheap on long videos, changes on any re-encode or edit."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(HASH_BYTES))
        fh.seek(max(0, size - HASH_BYTES))
        h.update(fh.read(HASH_BYTES))
    return "size+first+last-MiB:sha256:" + h.hexdigest()


def config_hash(cfg: TrackRunConfig, max_frames: int | None) -> str:
    """sha256 of the resolved config, --max-frames and the model files' sha256: what makes two results the same."""
    from pipeline.io.run_meta import weight_files

    weights = [(w["path"], w["sha256"]) for w in weight_files(cfg)]
    blob = json.dumps({"config": dataclasses.asdict(cfg), "max_frames": max_frames, "weights": weights},
                      sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class Manifest:
    """batch.json: every video's last outcome, rewritten whole (temporary name, then renamed) after each video."""

    def __init__(self, out: Path) -> None:
        self.path = out / MANIFEST
        self.videos: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.videos = {k: v for k, v in data.get("videos", {}).items() if isinstance(v, dict)}
            except (OSError, ValueError, AttributeError):
                raise UserError(f"{self.path} is unreadable or not a batch manifest; move it away to start afresh") from None

    def finished(self, job: VideoJob, out: Path) -> bool:
        """True when `job` was finished earlier with the same input and settings and its folder is still there."""
        e = self.videos.get(job.name, {})
        return (e.get("status") == "done" and e.get("input_hash") == job.input_hash
                and e.get("config_hash") == job.config_hash and (out / job.name / "run.json").is_file())

    def record(self, o: VideoOutcome) -> None:
        if o.status != "skipped":  # a skipped video keeps its entry as it was
            self.videos[o.name] = dataclasses.asdict(o)
            self.save()

    def save(self) -> None:
        body = {"written_by": "run.py batch", "input_hash": f"sha256 of the file size and its first and last {HASH_BYTES} bytes",
                "videos": self.videos}
        write_atomic(self.path, mask_credentials(json.dumps(body, indent=1)) + "\n")


@contextmanager
def batch_lock(out: Path) -> Iterator[None]:
    """One batch at a time per --out folder."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fh: IO[str] = (out / ".batch.lock").open("a+", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot create --out {out}: {exc.strerror}") from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise UserError(f"{out} is in use by another batch; wait for it to end or choose another --out") from None
    try:
        yield
    finally:
        fh.close()


def plan(opts: BatchOptions, cfg: TrackRunConfig, manifest: Manifest) -> tuple[list[VideoJob], list[VideoOutcome]]:
    """Jobs to run, and the outcomes known without running (skipped, unreadable, a foreign folder in the way)."""
    videos = list_videos(opts.source)
    chash = config_hash(cfg, opts.max_frames)
    jobs, known = [], []
    for video, name in zip(videos, folder_names(videos)):
        try:
            job = VideoJob(video.resolve(), name, input_hash(video), chash)
            if (opts.out / name).exists() and name not in manifest.videos:
                raise UserError(f"{opts.out / name} exists but was not written by this batch (not in {MANIFEST}): "
                                "move it or choose another --out")
            if not opts.force and manifest.finished(job, opts.out):
                e = manifest.videos[name]
                known.append(VideoOutcome(name, str(video), "skipped", frames=e.get("frames", 0),
                                          seconds=e.get("seconds", 0.0)))
                continue
            jobs.append(dataclasses.replace(job, frames=probe(video, cfg, opts.max_frames)))
        except OSError as exc:
            known.append(VideoOutcome(name, str(video), "failed", error=f"cannot read {video}: {exc.strerror}"))
        except UserError as exc:  # corrupt, not a video, or in the way: known here, without starting Ray
            known.append(VideoOutcome(name, str(video), "failed", error=str(exc)))
    return jobs, known


def run_batch(opts: BatchOptions, cfg: TrackRunConfig, say: Callable[[str], None] = print) -> BatchResult:
    """Run every video of --source not finished yet; returns each outcome (the dataset is rebuilt at the end)."""
    t0 = time.perf_counter()
    result = BatchResult()
    with batch_lock(opts.out):
        manifest = Manifest(opts.out)
        jobs, known = plan(opts, cfg, manifest)
        for o in known:
            manifest.record(o)
            say(o.line())
        result.outcomes += known
        if jobs:
            for o in run_jobs(jobs, opts, cfg, say):
                manifest.record(o)
                result.outcomes.append(o)
        result.dataset = build_dataset(opts.out, manifest.videos)
    result.seconds = time.perf_counter() - t0
    return result


def replace_folder(tmp: Path, final: Path) -> None:
    """Put a whole video folder in place of an earlier one: renames only, so `final` is never half there."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def quiet_ray_logs() -> None:
    """Ray's start-up notices are not the user's business; its errors still show."""
    logging.getLogger("ray").setLevel(logging.ERROR)


class Progress:
    """Frames done per video, told by the workers (a Ray actor): the latest count, so a retried video restarts at 0."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}

    def report(self, name: str, frames: int) -> None:
        self.frames[name] = frames

    def total(self) -> int:
        return sum(self.frames.values())


@functools.cache
def worker_detectors() -> DetectorCache:
    """The detectors this worker process has loaded: Ray reuses a worker for later videos, which then skip
    loading and compiling the model (each worker process has its own)."""
    from pipeline.apps.processing import DetectorCache

    return DetectorCache()


def process_video(job: VideoJob, cfg: TrackRunConfig, out: Path, max_frames: int | None, progress: Any) -> VideoOutcome:
    """One video through `run_track` into out/.NAME.partial, renamed to out/NAME when whole (runs in a Ray worker).

    A problem with the video (UserError: corrupt, unreadable) is an outcome, not an exception: Ray retries
    only a worker that died, and the driver reports the error in one line.
    """
    from pipeline.apps.track_run import partial_input_error, run_track
    from pipeline.io.run_dirs import RunDir

    tmp, final = out / f".{job.name}.partial", out / job.name
    shutil.rmtree(tmp, ignore_errors=True)  # what an attempt whose worker died left behind
    outcome = VideoOutcome(job.name, str(job.source), "failed", job.input_hash, job.config_hash)
    t0 = time.perf_counter()

    def on_frame(n: int) -> None:
        if n % 10 == 0:
            progress.report.remote(job.name, n)

    try:
        summary = run_track(job.source, RunDir(tmp, inputs=[job.source]), cfg, quiet=True, max_frames=max_frames,
                            on_frame=on_frame, detector=worker_detectors().get(cfg.detector))
    except UserError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        outcome.error = str(exc)
        return outcome
    finally:
        outcome.seconds = round(time.perf_counter() - t0, 3)
    progress.report.remote(job.name, summary.frames)
    outcome.frames = summary.frames
    if summary.interrupted:
        shutil.rmtree(tmp, ignore_errors=True)
        outcome.status, outcome.error = "interrupted", "stopped by Ctrl-C or SIGTERM; it is redone on the next run"
        return outcome
    replace_folder(tmp, final)
    outcome.finished = _utc_now()
    if summary.ended_early:  # outputs cover the frames read; the video is reported and redone next time
        outcome.error = str(partial_input_error(job.source, summary, final))
    else:
        outcome.status = "done"
    return outcome


def start_ray(opts: BatchOptions) -> int:
    """Join --address, or start Ray in this process; returns how many videos may run at once."""
    return init_ray(opts.address, opts.workers)


def init_ray(address: str, workers: int) -> int:
    """Join `address`, or start Ray in this process (no dashboard, quiet logs); returns the workers to use.

    Started here, Ray has as many CPUs as `workers` (0: the cores), and each worker's torch threads share
    the cores out. Joining a cluster, the project folder travels as the job's working_dir and output folders
    must be ones every node sees (a shared file system). Used by `batch` and by `live` with many cameras.
    """
    import ray

    quiet_ray_logs()
    common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    root = resources.checkout_root()
    if address:  # the checkout travels as the working_dir; an installed copy sends only its package
        env: dict[str, Any] = (
            {"working_dir": str(root), "excludes": [".venv/", ".git/", "runs/", "**/__pycache__/"]} if root
            else {"py_modules": [str(resources.source_root() / "pipeline")]})
        ray.init(address=address, runtime_env=env, **common)
        return workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    cores = os.cpu_count() or 1
    workers = workers or cores
    path = os.pathsep.join(p for p in (str(resources.source_root()), os.environ.get("PYTHONPATH", "")) if p)
    env_vars = {"OMP_NUM_THREADS": str(max(1, cores // workers)), "PYTHONPATH": path}
    ray.init(address="local", num_cpus=workers, runtime_env={"env_vars": env_vars}, **common)
    return workers


def _failure(exc: Exception, job: VideoJob) -> VideoOutcome:
    """A video whose task raised: its worker died every try, or a bug (named, for a report)."""
    import ray.exceptions as rex

    if isinstance(exc, (rex.WorkerCrashedError, rex.OutOfMemoryError, rex.NodeDiedError)):
        why = f"its worker process died {RETRIES + 1} times (killed or out of memory): {type(exc).__name__}"
    elif isinstance(exc, rex.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        why = f"internal error {type(cause).__name__}: {str(cause).splitlines()[-1] if str(cause) else ''} (please report it)"
    else:
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return VideoOutcome(job.name, str(job.source), "failed", job.input_hash, job.config_hash, error=why)


def run_jobs(jobs: list[VideoJob], opts: BatchOptions, cfg: TrackRunConfig, say: Callable[[str], None]) -> Iterator[VideoOutcome]:
    """Run the jobs on Ray, at most `workers` at a time, with a bar over the whole batch; yields each outcome."""
    import ray

    owned = not ray.is_initialized()  # a caller (a test, a notebook) may have started Ray already
    running: dict[Any, VideoJob] = {}
    workers = start_ray(opts) if owned else opts.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    try:
        task = ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)(process_video)
        progress: Any = ray.remote(num_cpus=0)(Progress).remote()  # an actor handle
        total = sum(j.frames for j in jobs) or None
        queue: deque[VideoJob] = deque(jobs)
        with tqdm(total=total, unit="frame", disable=opts.quiet, dynamic_ncols=True) as bar:
            while queue or running:
                while queue and len(running) < workers:
                    job = queue.popleft()
                    running[task.remote(job, cfg, opts.out.resolve(), opts.max_frames, progress)] = job
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                for ref in ready:
                    job = running.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - the video is reported, the others go on
                        outcome = _failure(exc, job)
                    yield outcome
                    (say if opts.quiet else bar.write)(mask_credentials(outcome.line()))
                bar.n = min(ray.get(progress.total.remote()), total or 10**12)
                bar.set_postfix_str(f"videos {len(jobs) - len(queue) - len(running)}/{len(jobs)}", refresh=True)
    finally:
        if owned:
            ray.shutdown()  # stops the videos still running (Ctrl-C): their partial folders go too
            for job in running.values():
                shutil.rmtree(opts.out / f".{job.name}.partial", ignore_errors=True)


def probe(path: Path, cfg: TrackRunConfig, max_frames: int | None) -> int:
    """Open the video and decode its first frame as `track` will (UserError when it cannot); its frame count."""
    from pipeline.io.frames import VideoFileSource

    with VideoFileSource(path) as src:
        if next(iter(src), None) is None:
            raise UserError(f"no frame of {path} could be decoded: the file is empty or corrupt")
        stride = getattr(getattr(cfg, "input", None), "vid_stride", 1)
        n = -(-src.info.frame_count // stride)
    return min(n, max_frames or n)


def build_dataset(out: Path, videos: dict[str, dict[str, Any]]) -> Path | None:
    """out/dataset/{tracks,predictions,events}/video=NAME/part-0.parquet for every finished video.

    The Hive layout lets pandas, DuckDB, Spark and pyarrow read `video` as a column. A video's partition is
    rewritten only when the video was finished again since (dataset/.built.json), and dropped when the video is
    no longer finished, so a rerun that skips everything reads nothing.
    """
    from pipeline.io.parquet import CONVERTED, read_run_table, write_table

    root = out / DATASET
    built_path = root / ".built.json"
    try:
        built = json.loads(built_path.read_text(encoding="utf-8")) if built_path.exists() else {}
    except (OSError, ValueError):
        built = {}
    done = {n: e.get("finished", "") for n, e in videos.items() if e.get("status") == "done" and (out / n).is_dir()}
    for kind in CONVERTED:
        for part in (root / kind).glob("video=*") if (root / kind).is_dir() else []:
            if part.name.removeprefix("video=") not in done:
                shutil.rmtree(part)
    for name, finished in sorted(done.items()):
        if built.get(name) == finished:
            continue
        for kind in CONVERTED:
            table = read_run_table(out / name, kind)
            if table is not None:
                (root / kind / f"video={name}").mkdir(parents=True, exist_ok=True)
                write_table(table, root / kind / f"video={name}" / "part-0.parquet")
        built[name] = finished
        root.mkdir(exist_ok=True)
        write_atomic(built_path, json.dumps({k: v for k, v in built.items() if k in done}, indent=1))
    return root if done else None
