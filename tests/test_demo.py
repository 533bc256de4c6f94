"""`newsmon demo` runs the whole cycle offline and leaves a digest on disk."""

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from newsmon.cli import app

REPO_CONFIG = Path(__file__).resolve().parents[1] / "newsmon.toml"


@pytest.mark.usefixtures("prefect_harness")
def test_demo_completes_offline_and_leaves_a_digest(tmp_path):
    demo_dir = tmp_path / "demo"
    result = CliRunner().invoke(app, ["--config", str(REPO_CONFIG), "demo", "--dir",
                                      str(demo_dir)])

    assert result.exit_code == 0, result.output
    assert "articles: 11 new" in result.output
    digests = sorted((demo_dir / "warehouse" / "digests").glob("*.html"))
    assert len(digests) == 1
    assert {p.suffix for p in digests[0].parent.iterdir()} == {".html", ".txt", ".eml"}
    text = digests[0].with_suffix(".txt").read_text(encoding="utf-8")
    assert "weekly digest" in text
    assert str(digests[0]) in result.output
    assert f"newsmon --config {demo_dir.resolve() / 'newsmon.toml'} sql" in result.output
    with duckdb.connect(str(demo_dir / "warehouse" / "newsmon.analyst.duckdb"),
                        read_only=True) as con:
        articles, classified = con.execute(
            "SELECT count(*), count(topic) FROM article_topics").fetchone()
        seed_titles = con.execute(
            "SELECT count(*) FROM articles WHERE title LIKE '%Hanoi Summit%'").fetchone()[0]
    assert (articles, classified) == (11, 11)
    assert seed_titles == 2
