"""The address of a machine reached over SSH, `ssh://[user@]host[:port][?python=PATH]`: parsed and
checked once (a target profile's `remote`, `--remote`), below the profiles that name it and the SSH
runner that dials it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from targets.errors import UsageError

# a host name, IPv4 or (bracketed in the URL) IPv6 address, or a user name: never an option for ssh
_SAFE_SSH_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.%:-]*$")


@dataclass(frozen=True)
class SshAddress:
    """`ssh://[user@]host[:port][?python=/path/to/python]`; python: the board's interpreter that has
    speedproof installed (default `python3`)."""

    host: str
    user: str | None = None
    port: int | None = None
    python: str = "python3"

    @classmethod
    def parse(cls, text: str) -> SshAddress:
        expected = (
            f"--remote {text!r}: expected ssh://[user@]host[:port][?python=/path/to/python], e.g. "
            "ssh://pi@rpi5.local, ssh://ubuntu@[fd00::7]:2222 or "
            "ssh://ubuntu@10.0.0.7:2222?python=/opt/speedproof/bin/python"
        )
        try:
            parts = urlsplit(text)
            hostname = parts.hostname
        except ValueError as error:  # `ssh://[::1` (an unclosed bracket)
            raise UsageError(f"{expected}; {error}") from None
        if parts.scheme != "ssh" or not hostname:
            raise UsageError(expected)
        # ssh reads an argument that begins with '-' as an option (-oProxyCommand=... runs a command)
        for part, value in (("host", hostname), ("user", parts.username)):
            if value and not _SAFE_SSH_NAME.match(value):
                raise UsageError(
                    f"--remote {text!r}: the {part} {value!r} is not a {part} name (letters, digits, '.', '_', "
                    "'-' not first, ':' inside [...] for IPv6); an ssh argument that begins with '-' is an option"
                )
        if parts.password is not None:
            raise UsageError(
                f"--remote {text!r}: a password in the address is refused; speedproof logs in with keys only "
                "(ssh-agent or IdentityFile in ~/.ssh/config)"
            )
        try:
            port = parts.port
        except ValueError:
            raise UsageError(f"--remote {text!r}: the port is not a number from 1 to 65535") from None
        query = parse_qs(parts.query)
        unknown = sorted(set(query) - {"python"})
        if unknown or parts.path not in ("", "/"):
            raise UsageError(
                f"--remote {text!r}: unknown part {(unknown or [parts.path])[0]!r}; the only query key is python"
            )
        python = query.get("python", ["python3"])[-1]
        return cls(host=hostname, user=parts.username, port=port, python=python)

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{self.host}{port}"
