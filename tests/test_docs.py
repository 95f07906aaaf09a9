"""The documentation site: its generated reference names every command, option, recipe, policy key and
backend option there is, and the site builds with `mkdocs build --strict` (no broken link or anchor, no
page left out of the navigation)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import harness.recipes  # noqa: F401  (each module registers its recipe kinds)
from harness.commands.reference import command_parsers, reference_pages
from harness.recipes.catalogue import RECIPE_KINDS
from harness.verdict.policy import POLICY_KEYS
from targets.backends import BACKENDS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pages():
    return reference_pages()


def test_every_command_and_option_appears_in_the_generated_reference(pages):
    reference = pages["reference/commands.md"]
    commands = dict(command_parsers())
    assert len(commands) >= 12
    for name, parser in commands.items():
        assert f"## `speedproof {name}`" in reference
        section = reference.split(f"## `speedproof {name}`")[1].split("\n## `speedproof ")[0]
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}`" in section, f"{name} {option}"


def test_every_recipe_policy_key_and_backend_option_appears(pages):
    for name, kind in RECIPE_KINDS.items():
        assert f"## `{name}`" in pages["reference/recipe-catalogue.md"]
        for option in kind.options:
            assert f"`{option}`" in pages["reference/recipe-catalogue.md"].split(f"## `{name}`")[1].split("\n## ")[0]
    for key in POLICY_KEYS:
        assert f"| `{key}` |" in pages["reference/policy-keys.md"]
    for name, entry in BACKENDS.items():
        section = pages["reference/profile-keys.md"].split(f"### `{name}`")[1].split("\n### ")[0]
        assert all(f"`{option}`" in section for option in entry.options)


def test_every_page_is_in_the_navigation_and_every_generated_page_is_linked():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def paths(items):
        for item in items:
            for value in item.values():
                yield from paths(value) if isinstance(value, list) else [value]

    in_nav = set(paths(config["nav"]))
    on_disk = {path.relative_to(ROOT / "docs").as_posix() for path in (ROOT / "docs").rglob("*.md")}
    assert on_disk | set(reference_pages()) == in_nav


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "commands" / "index.html").is_file()
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "harness.api.verify" in api  # the Python API reference from the docstrings
