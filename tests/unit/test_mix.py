import pytest

from epipe.load.mix import SPOTIFY_MIX, Tree, _quantile


def test_mix_proportions_sum_to_one_hundred_percent() -> None:
    assert sum(SPOTIFY_MIX.values()) == pytest.approx(100.0, abs=0.02)
    assert max(SPOTIFY_MIX, key=SPOTIFY_MIX.__getitem__) == "cat"


def test_tree_forgets_a_removed_subtree() -> None:
    tree = Tree(
        "/b",
        files=["/b/d/f", "/b/dx/f", "/b/d/e/g"],
        dirs=["/b", "/b/d", "/b/d/e", "/b/dx"],
        tagged={"/b/d/f", "/b/dx/f"},
    )
    tree.forget_dir("/b/d")
    assert tree.dirs == ["/b", "/b/dx"]
    assert tree.files == ["/b/dx/f"]
    assert tree.tagged == {"/b/dx/f"}


def test_tree_renames_a_moved_subtree() -> None:
    tree = Tree("/b", files=["/b/d/f", "/b/dx/f"], dirs=["/b", "/b/d", "/b/dx"], tagged={"/b/d/f"})
    tree.rename_dir("/b/d", "/b/dx/n")
    assert tree.dirs == ["/b", "/b/dx/n", "/b/dx"]
    assert tree.files == ["/b/dx/n/f", "/b/dx/f"]
    assert tree.tagged == {"/b/dx/n/f"}


def test_quantile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert _quantile(values, 0.5) == 51.0
    assert _quantile(values, 0.99) == 100.0
