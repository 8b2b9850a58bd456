"""The sample dataset: annotated camera images, generated deterministically from a seed.

Pure: `generate(count, seed)` yields the same images for the same arguments. Layout:

    <under>/<split>/<YYYYMMDD>_<camera>_<session>/frame_<NNNN>.<ext>

with up to 500 frames per capture session and splits train/val/test (80/10/10 by session).
Each image carries one annotation, the `user.labels` xattr: object counts per class, camera,
weather, time of day, scene, resolution, capture time, detector info, tags.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

FRAMES_PER_SESSION = 500
XATTR_NAME = "labels"

CAMERAS = ("front", "rear", "left", "right")
WEATHER = ("clear", "clear", "clear", "overcast", "rain", "fog", "snow")
TIMES_OF_DAY = ("day", "day", "day", "dusk", "night", "dawn")
SCENES = ("urban", "urban", "suburban", "highway", "rural")
RESOLUTIONS = ((1920, 1080), (2048, 1536), (1280, 720), (3840, 2160))
# Mean object count per frame, by scene: bicycles are common in town, rare on highways.
OBJECT_RATES: dict[str, dict[str, float]] = {
    "urban": {
        "car": 6.0,
        "person": 4.0,
        "bicycle": 1.2,
        "bus": 0.4,
        "truck": 0.5,
        "traffic_light": 2.0,
        "dog": 0.1,
    },
    "suburban": {
        "car": 3.0,
        "person": 1.5,
        "bicycle": 0.8,
        "bus": 0.1,
        "truck": 0.3,
        "traffic_light": 0.8,
        "dog": 0.3,
    },
    "highway": {
        "car": 9.0,
        "person": 0.05,
        "bicycle": 0.02,
        "bus": 0.3,
        "truck": 2.5,
        "traffic_light": 0.0,
        "dog": 0.0,
    },
    "rural": {
        "car": 0.8,
        "person": 0.4,
        "bicycle": 0.3,
        "bus": 0.02,
        "truck": 0.6,
        "traffic_light": 0.05,
        "dog": 0.2,
    },
}
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Image:
    """One image file: where it goes (relative to the load root), its size, its labels."""

    dir: tuple[str, ...]
    name: str
    size: int
    labels: dict[str, Any]


def generate(count: int, seed: int) -> Iterator[Image]:
    """`count` images, the same ones for the same `seed`."""
    if count < 0:
        raise ValueError("count must be >= 0")
    rng = random.Random(seed)
    produced = 0
    session = 0
    while produced < count:
        frames = min(FRAMES_PER_SESSION, count - produced)
        yield from _session(rng, session, frames)
        produced += frames
        session += 1


def _session(rng: random.Random, number: int, frames: int) -> Iterator[Image]:
    camera = rng.choice(CAMERAS)
    start = _EPOCH + timedelta(seconds=rng.randrange(0, 365 * 86400))
    split = rng.choices(("train", "val", "test"), weights=(8, 1, 1))[0]
    directory = (split, f"{start:%Y%m%d}_{camera}_{number:05d}")
    weather = rng.choice(WEATHER)
    time_of_day = rng.choice(TIMES_OF_DAY)
    width, height = rng.choice(RESOLUTIONS)
    ext = "png" if rng.random() < 0.15 else "jpg"
    for frame in range(frames):
        scene = rng.choice(SCENES)
        objects = {
            name: n for name, rate in OBJECT_RATES[scene].items() if (n := _poisson(rng, rate)) > 0
        }
        captured = start + timedelta(milliseconds=frame * 100)
        confidence = round(rng.uniform(0.55, 0.99), 3)
        labels: dict[str, Any] = {
            "objects": objects,
            "camera": camera,
            "weather": weather,
            "time_of_day": time_of_day,
            "scene": scene,
            "resolution": {"width": width, "height": height},
            "captured_at": captured.isoformat().replace("+00:00", "Z"),
            "detector": {"name": "yolo", "version": "8.2", "confidence": confidence},
            "tags": sorted(
                {scene, weather, time_of_day}
                | ({"crowded"} if sum(objects.values()) > 12 else set())
            ),
            "reviewed": rng.random() < 0.2,
        }
        pixels = width * height
        size = int(pixels * (rng.uniform(0.8, 1.6) if ext == "png" else rng.uniform(0.08, 0.3)))
        yield Image(directory, f"frame_{frame:04d}.{ext}", size, labels)


def _poisson(rng: random.Random, rate: float) -> int:
    """Knuth's method: exact for the small rates used here."""
    if rate <= 0:
        return 0
    limit, k, p = math.exp(-rate), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
