"""`newsmon demo`: the whole cycle with no network, on a demo outlet served on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer

from newsmon.cli._app import app, console, fail, get_config
from newsmon.cli.ingest import prepare_ingest, print_ingest, showing_progress
from newsmon.config import Config
from newsmon.demo import demo_site, feed_paths
from newsmon.localsite import serving

EXAMPLE_QUERIES = (
    "SELECT topic, stance, count(*) AS articles FROM article_topics GROUP BY ALL ORDER BY 3 DESC",
    "SELECT outlet, title, stance, round(stance_confidence, 2) AS confidence "
    "FROM article_topics ORDER BY published_at DESC LIMIT 10",
    "SELECT feed_url, last_outcome, articles FROM feed_health",
)


# The demo's own folders, relative to its config (in the demo's folder).
DEMO_SEEDS, DEMO_MODELS = "seeds", "models"


def demo_config(project: Config, directory: Path, feed_urls: list[str]) -> str:
    """A config for the demo: the project's topics, and its own warehouse, models and seeds (a
    copy of the project's) inside ``directory``, so that nothing the demo writes, such as labels
    of its 127.0.0.1 articles, reaches the project."""
    quote = json.dumps  # a JSON string is a valid TOML basic string
    lines = [
        f"timezone = {quote(project.timezone)}",
        "[warehouse]",
        'path = "warehouse/newsmon.duckdb"',
        "[fetch]",
        "allow_private_addresses = true  # the demo outlet is served on 127.0.0.1",
        "[classify]",
        f"seeds_dir = {quote(DEMO_SEEDS)}",
        f"models_dir = {quote(DEMO_MODELS)}",
    ]
    for topic in project.topics:
        lines += ["[[topics]]", f"id = {quote(topic.id)}", f"name = {quote(topic.name)}",
                  f"target = {quote(topic.target)}", f"keywords = {json.dumps(topic.keywords)}"]
    for url in feed_urls:
        lines += ["[[feeds]]", f"url = {quote(url)}"]
    return "\n".join(lines) + "\n"


@app.command()
def demo(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo warehouse and digest go.")
    ] = Path("newsmon-demo"),
) -> None:
    """Run the whole cycle offline: serve a demo outlet on 127.0.0.1, ingest it into a separate
    demo warehouse, classify, and render the digest to disk."""
    project = get_config(ctx)
    prepare_ingest()
    from newsmon.flows import run_settings
    from newsmon.flows.digest import digest_flow
    from newsmon.flows.ingest import ingest_flow

    if directory.resolve() == project.base_dir.resolve():
        raise fail(f"--dir {directory} is the project's folder: the demo needs a folder of its own")
    # A demo starts from nothing each time: its outlet's address changes from run to run, so
    # its labels and models from an earlier run name articles that are gone.
    for own in ("warehouse", DEMO_SEEDS, DEMO_MODELS):
        shutil.rmtree(directory / own, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    project_seeds = project.resolve(project.classify.seeds_dir)
    if project_seeds.is_dir():
        shutil.copytree(project_seeds, directory / DEMO_SEEDS)
    config_path = (directory / "newsmon.toml").resolve()
    site = demo_site(project_seeds)
    with serving(site) as server:
        config_path.write_text(
            demo_config(project, directory, [server.url(path) for path in feed_paths(site)]),
            encoding="utf-8",
        )
        console.print(f"demo outlet serving {len(site)} pages and feeds at {server.url('/')}",
                      markup=False)
        with run_settings(), showing_progress():
            ingested = ingest_flow(str(config_path))
            digest = digest_flow(str(config_path), send=False)
    print_ingest(ingested)
    console.print(f"\n[bold]Digest {digest.week}[/] ({digest.articles} articles):")
    for label, path in (("HTML", digest.files.html), ("text", digest.files.text),
                        ("mail", digest.files.eml)):
        console.print(f"  {label:>5}: {path}", highlight=False, soft_wrap=True, markup=False)
    console.print(f"\nDemo warehouse: {(directory / 'warehouse').resolve()}", markup=False,
                  highlight=False,
                  soft_wrap=True)
    console.print("Try some SQL on it:")
    for query in EXAMPLE_QUERIES:
        console.print(f"  newsmon --config {config_path} sql {json.dumps(query)}",
                      highlight=False, markup=False, soft_wrap=True)
