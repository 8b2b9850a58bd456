import pytest

from epipe.errors import FsError
from epipe.fs.paths import check_name, is_within, join_path, normalise, split_path


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("/", []),
        ("/a", ["a"]),
        ("/a/b/c", ["a", "b", "c"]),
        ("//a///b/", ["a", "b"]),
        ("/é/日本語", ["é", "日本語"]),
        ("/a b/.hidden/x..y", ["a b", ".hidden", "x..y"]),
    ],
)
def test_split_path_accepts_and_normalises(path: str, parts: list[str]) -> None:
    assert split_path(path) == parts
    assert normalise(path) == join_path(parts)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("a/b", "absolute"),
        ("", "absolute"),
        ("/a/\x00b", "NUL"),
        ("/a/./b", "not allowed"),
        ("/a/../b", "not allowed"),
        ("/" + "x" * 256, "256 bytes"),
        ("/" + "é" * 128, "256 bytes"),  # 2 bytes per character
        ("/a/\udcff", "UTF-8"),  # a lone surrogate: undecodable bytes from the shell
    ],
)
def test_split_path_rejects_with_einval(path: str, reason: str) -> None:
    with pytest.raises(FsError) as caught:
        split_path(path)
    assert caught.value.code == "EINVAL"
    assert reason in str(caught.value)


def test_names_up_to_255_bytes_are_valid() -> None:
    assert check_name("x" * 255) == "x" * 255
    assert check_name("é" * 127 + "x") == "é" * 127 + "x"  # 255 bytes


@pytest.mark.parametrize("name", ["", "a/b", "a\x00", ".", ".."])
def test_check_name_rejects(name: str) -> None:
    with pytest.raises(FsError, match="EINVAL"):
        check_name(name)


def test_split_path_rejects_non_strings() -> None:
    with pytest.raises(FsError, match="EINVAL"):
        split_path(b"/a")  # type: ignore[arg-type]


def test_is_within() -> None:
    assert is_within(["a", "b"], ["a"])
    assert is_within(["a"], ["a"])
    assert not is_within(["ab"], ["a"])
    assert is_within(["a"], [])
