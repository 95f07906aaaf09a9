"""Text from a record (model, variant and file names, error strings) made safe for where it is
shown: control characters never reach a terminal as escape sequences, XML 1.0 gets only the
characters it allows, and markdown (pull requests, `$GITHUB_STEP_SUMMARY`) no raw HTML."""

from __future__ import annotations

import html
import re

# C0 controls but tab and newline, DEL, C1 controls: a terminal acts on these (ESC starts a sequence)
_TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# what XML 1.0 forbids: C0 controls but tab, newline and carriage return; surrogates; U+FFFE, U+FFFF.
# C1 controls and DEL are allowed by XML but are still escape sequences on a terminal: shown escaped too
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """`text` with every control character but tab and newline written as `\\xNN`."""
    return _TERMINAL_CONTROLS.sub(_visible, text)


def xml_safe(text: str) -> str:
    """`text` with every character XML 1.0 cannot hold (and C1 controls) written as `\\xNN`/`\\uNNNN`."""
    return _XML_FORBIDDEN.sub(_visible, text)


def markdown_safe(text: str) -> str:
    """One line of record text for markdown: controls escaped, HTML tags and entities shown as text,
    table pipes escaped."""
    return html.escape(terminal_safe(text), quote=False).replace("|", "\\|")
