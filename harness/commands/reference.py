"""The reference pages of the documentation site, generated from the code so they cannot drift: every command
and option from the argparse parsers, every recipe and its options from the recipe catalogue, the policy keys,
the target profile keys and backend options, the reason codes and next steps, and the record's fields.

`docs/gen_reference.py` (run by mkdocs-gen-files while the site builds) writes each as a page;
`tests/test_docs.py` checks every command and option appears.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

REFERENCE_PAGES = {
    "reference/commands.md": "commands_markdown",
    "reference/recipe-catalogue.md": "recipes_markdown",
    "reference/policy-keys.md": "policy_keys_markdown",
    "reference/profile-keys.md": "profile_keys_markdown",
    "reference/reason-codes.md": "reason_codes_markdown",
    "reference/record-fields.md": "record_fields_markdown",
}


def _prose(text: object) -> str:
    """Help text as Markdown: whitespace joined, and square brackets outside `code` escaped (usage such as
    `NAME[:key=value...]` is not a link)."""
    parts = " ".join(str(text).split()).split("`")
    return "`".join(part if index % 2 else part.replace("[", "\\[") for index, part in enumerate(parts))


def _cell(text: object) -> str:
    """Text for one cell of a Markdown table: pipes escaped, brackets outside code escaped."""
    return _prose(text).replace("|", "\\|")


def _table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def command_parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Each command's name and parser, in the order `speedproof --help` lists them."""
    from harness.cli import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def option_rows(parser: argparse.ArgumentParser) -> list[list[object]]:
    """One row per option and positional of a command: its names, value, default and help."""
    rows: list[list[object]] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        names = ", ".join(f"`{name}`" for name in action.option_strings) or f"`{action.metavar or action.dest}`"
        if action.nargs == 0:
            value = ""
        elif action.choices:
            value = " \\| ".join(f"`{choice}`" for choice in action.choices)
        else:
            value = f"`{action.metavar or action.dest.upper()}`"
        default = "" if action.default in (None, [], (), False, argparse.SUPPRESS) else f"`{action.default}`"
        help_text = (action.help or "").replace("%(default)s", str(action.default)).replace("%%", "%")
        rows.append([names, value, default, help_text])
    return rows


def commands_markdown() -> str:
    """Every command: what it does, its usage line, and a table of its options."""
    parts = [
        "# Commands and options",
        "",
        "Generated from the command-line parsers themselves (`speedproof COMMAND --help` says the same). "
        "Exit codes: 0 success (every variant accepted, for verify and gate), 1 a rejection or a failed cell, "
        "2 a usage or configuration error.",
    ]
    for name, parser in command_parsers():
        usage = " ".join(parser.format_usage().split())
        if usage.startswith("usage: "):
            usage = usage[len("usage: ") :]
        parts += ["", f"## `speedproof {name}`", "", _prose(parser.description or ""), ""]
        parts += ["```", usage, "```", "", _table(["option", "value", "default", "what it does"], option_rows(parser))]
    return "\n".join(parts) + "\n"


def recipes_markdown() -> str:
    """Every recipe kind of the catalogue: level, what it does, its main value and options."""
    import harness.recipes  # noqa: F401  (each module registers its recipe kinds)
    from harness.recipes.catalogue import RECIPE_KINDS

    parts = [
        "# Recipe catalogue",
        "",
        "Generated from the recipe catalogue. A recipe is written `NAME[:VALUE][:key=value...]`, chains with `+` "
        "(`structured:0.5+int8-static`); torch-level recipes need a torch model source, ONNX-level ones work on "
        "`.onnx` files too. What each does in practice: [Recipes](recipes.md).",
    ]
    for kind in RECIPE_KINDS.values():
        parts += ["", f"## `{kind.name}`", "", f"Level: {kind.level}. {kind.help}."]
        if kind.value is not None:
            parts += ["", f"Value: {kind.value.describe()}."]
        if kind.options:
            rows: list[list[object]] = []
            for key, option in kind.options.items():
                kind_text = " \\| ".join(option.choices) if option.choices else option.kind
                rows.append([f"`{key}`", kind_text, f"`{option.default}`", option.help])
            parts += ["", _table(["option", "values", "default", "what it does"], rows)]
    return "\n".join(parts) + "\n"


def policy_keys_markdown() -> str:
    """Every policy key: its default and meaning (a `[policy]` table, `--policy FILE`, a profile's `[policy]`)."""
    from harness.verdict.policy import policy_fields

    rows: list[list[object]] = []
    for name, item in policy_fields().items():
        choices = item.metadata.get("choices")
        rows.append(
            [f"`{name}`", " \\| ".join(choices) if choices else item.type, f"`{item.default}`", item.metadata["help"]]
        )
    return (
        "# Policy keys\n\nGenerated from the policy's fields. Each key is also a command-line option "
        "(`min_speedup` is `--min-speedup`); see [Policy](policy.md) for how the layers combine.\n\n"
        + _table(["key", "type", "default", "what it does"], rows)
        + "\n"
    )


def profile_keys_markdown() -> str:
    """The keys of a target profile and the options of every backend."""
    from targets.backends import BACKENDS
    from targets.profiles import REQUIRES_HELP, RESOURCES_HELP, TOP_LEVEL_HELP

    parts = [
        "# Target profile keys and backend options",
        "",
        "Generated from the profile loader and the backend registry; every key is validated when a profile "
        "is read. Profiles in practice: [Target profiles](profiles.md), [Backends](backends.md).",
        "",
        "## Top level",
        "",
        _table(["key", "what it is"], [[f"`{key}`", text] for key, text in TOP_LEVEL_HELP.items()]),
        "",
        "## `[resources]`",
        "",
        _table(["key", "what it is"], [[f"`{key}`", text] for key, text in RESOURCES_HELP.items()]),
        "",
        "## `[requires]`",
        "",
        _table(["key", "what it is"], [[f"`{key}`", text] for key, text in REQUIRES_HELP.items()]),
        "",
        "## `[[backends]]`",
    ]
    for name, entry in BACKENDS.items():
        install = f" Install: `pip install 'speedproof[{entry.extra}]'`." if entry.extra else ""
        runs = (
            "ONNX Runtime GenAI folders"
            if entry.artifact_kind == "genai-folder"
            else f"`.{entry.artifact_kind}` artifacts"
        )
        parts += ["", f"### `{name}`", "", f"{entry.help}; runs {runs}.{install}", ""]
        rows: list[list[object]] = [
            [f"`{key}`", " \\| ".join(option.choices) if option.choices else option.type.__name__, option.help]
            for key, option in entry.options.items()
        ]
        parts.append(_table(["option", "values", "what it does"], rows))
    return "\n".join(parts) + "\n"


def reason_codes_markdown() -> str:
    """Every reason code with its meaning, and every next step with its advice."""
    from harness.verdict.reasons import NextStep, ReasonCode

    return (
        "# Reason codes and next steps (generated)\n\nGenerated from the verdict's code. How they are given: "
        "[Reason codes and next steps](../concepts/reasons.md).\n\n## Reason codes\n\n"
        + _table(["code", "meaning"], [[f"`{code}`", code.meaning] for code in ReasonCode])
        + "\n\n## Next steps\n\n"
        + _table(["next step", "advice"], [[f"`{step}`", step.advice] for step in NextStep])
        + "\n"
    )


def record_fields_markdown() -> str:
    """The fields every record and cell has, and the optional ones, with their JSON types."""
    from harness.records import store

    def rows(fields: dict[str, tuple[type, ...]]) -> list[list[object]]:
        return [[f"`{key}`", store._type_names(kinds)] for key, kinds in fields.items()]

    sections: list[tuple[str, dict[str, Any]]] = [
        ("Every record", store.RECORD_FIELDS),
        ("Sections a record may have", store.OPTIONAL_SECTIONS),
        ("Every cell", store.CELL_FIELDS),
        ("What a cell may have", store.CELL_OPTIONAL_FIELDS),
        ("A verdict", {**store.VERDICT_FIELDS, **store.VERDICT_OPTIONAL_FIELDS}),
        ("A speedup", store.SPEEDUP_FIELDS),
    ]
    parts = [
        "# Record fields",
        "",
        "Generated from the record checker: what `report`, `gate --baseline` and the Python API read, and the "
        "type each must have (a record that breaks this is refused, naming the file and the key). "
        "More on records: [Result records](records.md).",
    ]
    for title, fields in sections:
        parts += ["", f"## {title}", "", _table(["field", "type"], rows(fields))]
    return "\n".join(parts) + "\n"


def reference_pages() -> dict[str, str]:
    """Every generated page: its path under docs/ and its Markdown."""
    return {path: globals()[function]() for path, function in REFERENCE_PAGES.items()}
