"""Config: a user can write one by hand, and a bad one is refused before any work starts."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsmon.cli import app
from newsmon.config import ConfigError, load_config

REPO_CONFIG = Path(__file__).resolve().parents[1] / "newsmon.toml"


def test_shipped_config_has_about_ten_feeds_and_the_seed_topic():
    config = load_config(REPO_CONFIG)
    assert 8 <= len(config.feeds) <= 15
    assert all(feed.url.startswith("https://") for feed in config.feeds)
    assert [topic.id for topic in config.topics] == ["us-dprk-diplomacy"]
    assert config.warehouse_path == REPO_CONFIG.parent / "warehouse" / "newsmon.duckdb"


def test_relative_paths_resolve_against_the_config_file(write_config, tmp_path):
    config = load_config(write_config('[warehouse]\npath = "data/w.duckdb"\n'))
    assert config.warehouse_path == tmp_path / "data" / "w.duckdb"
    assert config.analyst_copy_path == tmp_path / "data" / "w.analyst.duckdb"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[feeds]]\nurl = "ftp://x.example/rss"\n',
         "feeds[0].url: expected an absolute http:// or https:// URL (got 'ftp://x.example/rss')"),
        ("[fetch]\ntimeout_secs = 3\n",
         "fetch.timeout_secs: unknown key (misspelt, or in the wrong [section]?)"),
        ('[fetch]\nallow_private_addresses = "yes please"\n',
         "fetch.allow_private_addresses: Input should be a valid boolean"),
        # Strict: a string or number that merely looks like a boolean is a mistake to report.
        ('[fetch]\nallow_private_addresses = "yes"\n',
         "fetch.allow_private_addresses: Input should be a valid boolean"),
        ("[fetch]\nallow_private_addresses = 1\n",
         "fetch.allow_private_addresses: Input should be a valid boolean"),
        ("[[feeds]]\nname = 'no url'\n", "feeds[0].url: Field required"),
        ('timezone = "Mars/Olympus"\n', "timezone: expected an IANA time zone name"),
        ("[warehouse\n", "not valid TOML"),
    ],
)
def test_bad_config_names_file_key_and_expectation(write_config, body, message):
    path = write_config(body)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(str(path))
    assert message in str(error.value)


def test_cli_refuses_a_bad_config_before_any_work(write_config, tmp_path):
    path = write_config('[warehouse]\npath = "w.duckdb"\n[[feeds]]\nurl = "nope"\n')
    result = CliRunner().invoke(app, ["--config", str(path), "ingest"])
    assert result.exit_code == 2
    assert "feeds[0].url: expected an absolute http:// or https:// URL" in result.output
    assert not (tmp_path / "w.duckdb").exists()


def test_missing_config_file_says_how_to_name_one(tmp_path):
    result = CliRunner().invoke(app, ["--config", str(tmp_path / "none.toml"), "ingest"])
    assert result.exit_code == 2
    assert "config file not found (pass --config FILE or set NEWSMON_CONFIG)" in result.output
