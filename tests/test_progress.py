"""multiviz.progress: a bar on stderr when asked, the iterable itself (nothing written) otherwise."""

import io

from rich.console import Console

from multiviz.progress import track


def test_hidden_track_returns_the_iterable_itself(capfd):
    items = [1, 2, 3]
    assert track(items, total=3, description="x", show=False) is items
    assert capfd.readouterr() == ("", "")


def test_shown_track_yields_every_item_and_draws_the_bar():
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100)
    bar = track(range(4), total=4, description="lime: image", unit="forwards", show=True, console=console)
    seen = list(bar)
    assert seen == [0, 1, 2, 3]
    drawn = stream.getvalue()
    assert "lime: image" in drawn
    assert "4/4" in drawn
    assert "forwards" in drawn


def test_default_console_is_stderr(capfd, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws live displays only on a terminal
    assert list(track("ab", total=2, description="chars", show=True)) == ["a", "b"]
    out, err = capfd.readouterr()
    assert out == ""
    assert "chars" in err
