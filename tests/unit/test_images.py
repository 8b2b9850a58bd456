from collections import Counter

from epipe.fs.paths import check_name
from epipe.load.images import FRAMES_PER_SESSION, generate


def test_same_seed_same_dataset() -> None:
    assert list(generate(1200, seed=3)) == list(generate(1200, seed=3))


def test_other_seed_other_dataset() -> None:
    assert list(generate(50, seed=3)) != list(generate(50, seed=4))


def test_count_and_layout() -> None:
    images = list(generate(1234, seed=1))
    assert len(images) == 1234
    per_dir = Counter(image.dir for image in images)
    assert max(per_dir.values()) == FRAMES_PER_SESSION
    assert len(per_dir) == 3  # 500 + 500 + 234
    assert len({(image.dir, image.name) for image in images}) == 1234
    for image in images:
        assert image.dir[0] in ("train", "val", "test")
        for name in (*image.dir, image.name):
            check_name(name)
        assert image.size > 0


def test_labels_have_the_documented_shape() -> None:
    images = list(generate(2000, seed=9))
    for image in images:
        labels = image.labels
        assert set(labels) >= {"objects", "camera", "weather", "time_of_day", "scene"}
        assert all(isinstance(n, int) and n > 0 for n in labels["objects"].values())
        assert labels["camera"] in ("front", "rear", "left", "right")
    bicycles = [image.labels["objects"].get("bicycle", 0) for image in images]
    # "more than three bicycles" is a selective but non-empty query
    assert 0 < sum(b > 3 for b in bicycles) < len(images) // 10


def test_generate_zero_images() -> None:
    assert list(generate(0, seed=1)) == []
