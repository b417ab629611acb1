"""The progress line: a stage label that says what the job does, and a layout that holds at 80 columns."""

import io

from rich.console import Console
from rich.progress import Progress

from meshopt_cli import console


def rendered_line(width: int, description: str, stage: str, completed: int = 40, total: int = 180) -> str:
    out = io.StringIO()
    screen = Console(file=out, width=width, force_terminal=True, color_system=None, legacy_windows=False)
    with Progress(*console.progress_columns(), console=screen, transient=False, expand=True, auto_refresh=False) as bar:
        task = bar.add_task(description, total=total, stage=stage)
        bar.update(task, completed=completed)
        bar.refresh()
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # cursor control
    return [line for line in text.replace("\r", "\n").splitlines() if line.strip()][-1]


def test_the_bar_keeps_its_width_at_80_columns_with_long_loss_text():
    stage = "optimizing · style 0.000123 content 4.56e+03 tv 0.0789 total 4.56e+03"
    line = rendered_line(80, "style a-rather-long-mesh-name-from-a-scan-folder-starry-night", stage, completed=180)
    assert len(line) <= 80
    assert line.count("━") >= 12, line  # a full bar: its width (the loss text used to squeeze it to one cell)
    assert "180/180" in line and "optimizing" in line


def test_the_stage_label_is_shown_and_updated():
    line = rendered_line(120, "fit teapot", "loading and rendering the target", completed=0)
    assert "0/180" in line and "loading and rendering the target" in line


def test_without_a_terminal_progress_is_silent():
    with console.job_progress("fit x", 10, enabled=True) as progress:  # pytest's stderr is not a terminal
        progress.stage("optimizing")
        progress.advance(3, "optimizing · loss 1")
        progress.restart(20)
