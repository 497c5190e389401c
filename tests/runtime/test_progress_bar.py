"""The progress bar's text (rnnedge/progress.py)."""

from rnnedge.progress import bar_text


def test_first_update_after_a_slow_start_has_no_rate():
    # found by `rnnedge bench` on a loaded machine: loading took > 0.05 s before the first
    # update (0 done), and the time left divided by a rate of 0
    text = bar_text(0, 8, 1.5, "loading")
    assert "0/8 - - loading" in text


def test_rate_and_time_left_once_something_is_done():
    assert "2.0/s 3.0s left" in bar_text(2, 8, 1.0, "x")
