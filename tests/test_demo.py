"""`newsmon demo` runs the whole cycle offline and leaves a digest on disk."""

import os
import pty
import re
import select
import shutil
import subprocess
import sys
import termios
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from newsmon.cli import app
from newsmon.config import load_config
from newsmon.labels import USER_FILE, seeds_dir
from newsmon.models.artifacts import versions_dir

REPO = Path(__file__).resolve().parents[1]


def press_keys(command: list[str], keys: str, after: str, timeout: float = 120) -> str:
    """Run ``command`` on a terminal (``newsmon label`` reads single key presses from one),
    type ``keys`` once ``after`` is shown, and return everything it printed, without colour."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(command, stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    output, typed, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([primary], [], [], 0.2)[0]:
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # the terminal closed: the process has ended
                    break
                if not chunk:
                    break
                output += chunk
            # Typed once the command reads keys: switching the terminal to raw mode discards
            # what was typed before (and the primary side sees the secondary's mode).
            raw = not termios.tcgetattr(primary)[3] & termios.ICANON
            if not typed and raw and after.encode() in output:
                os.write(primary, keys.encode())
                typed = True
            if process.poll() is not None and not select.select([primary], [], [], 0.2)[0]:
                break
    finally:
        process.kill()
        process.wait()
        os.close(primary)
    return re.sub(r"\x1b\[[0-9;]*m", "", output.decode(errors="replace"))


@pytest.mark.usefixtures("prefect_harness")
def test_demo_completes_offline_and_keeps_what_it_writes_in_its_folder(tmp_path):
    # A copy of the project, so that a demo writing into the project's folders shows here.
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "newsmon.toml", project / "newsmon.toml")
    shutil.copytree(REPO / "seeds", project / "seeds")
    seeds_before = {p.name: p.read_bytes() for p in (project / "seeds").iterdir()}
    demo_dir = tmp_path / "demo"
    result = CliRunner().invoke(app, ["--config", str(project / "newsmon.toml"), "demo", "--dir",
                                      str(demo_dir)])

    assert result.exit_code == 0, result.output
    assert "articles: 11 new" in result.output
    digests = sorted((demo_dir / "warehouse" / "digests").glob("*.html"))
    assert len(digests) == 1
    assert {p.suffix for p in digests[0].parent.iterdir()} == {".html", ".txt", ".eml"}
    text = digests[0].with_suffix(".txt").read_text(encoding="utf-8")
    assert "weekly digest" in text
    assert str(digests[0]) in result.output
    demo_config = demo_dir.resolve() / "newsmon.toml"
    assert f"newsmon --config {demo_config} sql" in result.output
    with duckdb.connect(str(demo_dir / "warehouse" / "newsmon.analyst.duckdb"),
                        read_only=True) as con:
        articles, classified = con.execute(
            "SELECT count(*), count(topic) FROM article_topics").fetchone()
        seed_titles = con.execute(
            "SELECT count(*) FROM articles WHERE title LIKE '%Hanoi Summit%'").fetchone()[0]
    assert (articles, classified) == (11, 11)
    assert seed_titles == 2

    # Labelling a demo article (0: about none of the topics) saves it in the demo's seeds.
    shown = press_keys(
        [sys.executable, "-m", "newsmon", "--config", str(demo_config), "label", "--limit", "1"],
        "0", after="quit",
    )
    assert "saved 1 label(s)" in shown, shown
    assert "127.0.0.1" in (demo_dir / "seeds" / USER_FILE).read_text(encoding="utf-8")
    assert {p.name: p.read_bytes() for p in (project / "seeds").iterdir()} == seeds_before
    assert not (project / "models").exists()
    # The demo's seeds and models are its own copies, in its folder.
    config = load_config(demo_config)
    assert seeds_dir(config).is_relative_to(demo_dir.resolve())
    assert versions_dir(config).is_relative_to(demo_dir.resolve())
    assert list(versions_dir(config).glob("*/model.joblib"))
