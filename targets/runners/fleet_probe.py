"""Why a connection to a fleet's scheduler fails, in words a lab can act on. Dask retries a worker's
registration forever and says why only in its logs, so a worker with another CA's certificate, a
trust store of another CA, an expired certificate or plaintext to a TLS scheduler would hang in
silence: `probe_scheduler` tries one connection first (Dask's own, with this process's TLS config)
and raises with the reason; `connection_problem` turns Dask's and ssl's errors into that reason
for clients too."""

from __future__ import annotations

import asyncio

from targets.errors import SpeedproofError

PROBE_TIMEOUT_S = 10.0

# what ssl says, and what it means here (the first that matches)
_PEER_REFUSED = (
    "alert unknown ca",
    "alert bad certificate",
    "alert certificate expired",
    "alert certificate unknown",
    "alert decrypt error",
)


def connection_problem(error: BaseException, address: str) -> str:
    """The reason, in words, behind a failed connection to the scheduler at `address`."""
    text = _chain_text(error)
    lowered = text.lower()
    if "certificate verify failed" in lowered:
        detail = text[lowered.index("certificate verify failed") :].split("(")[0].split("\n")[0].rstrip(" )")
        return (
            f"this side refused the scheduler's certificate ({detail}): the scheduler's certificate must be signed by "
            "the CA in --tls-ca-file and be valid today"
        )
    if any(alert in lowered for alert in _PEER_REFUSED):
        alert = next(alert for alert in _PEER_REFUSED if alert in lowered)
        return (
            f"the scheduler refused this side's certificate ({alert.removeprefix('alert ')}): --tls-cert must be "
            "signed by the fleet's CA and be valid today"
        )
    if "eof occurred in violation of protocol" in lowered:
        return (
            "the scheduler closed the TLS connection during the handshake: it refused this side's certificate (signed "
            "by a CA it does not trust, or not valid today) or does not speak TLS"
        )
    if "wrong version number" in lowered or "record layer failure" in lowered or "http_request" in lowered:
        return f"the scheduler at {address} answers in plaintext, not TLS: use its tcp:// address"
    if "refused" in lowered and "connection" in lowered:
        return f"no Dask scheduler answers at {address} (connection refused)"
    if address.startswith("tcp://") and ("closed" in lowered or "timed out" in lowered):
        return (
            f"the scheduler at {address} closed the plaintext connection or did not answer it: if it is a TLS "
            "scheduler, use its tls:// address and the fleet's TLS files"
        )
    if "timed out" in lowered or "refused" in lowered:
        return f"no Dask scheduler answers at {address} ({text.splitlines()[0][:300]})"
    return f"cannot connect to the scheduler at {address} ({text.splitlines()[0][:300]})"


def probe_scheduler(address: str, role: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Connect once to the scheduler at `address` as `role` (Dask's config gives the TLS files) and
    say hello; raise SpeedproofError with the reason when that fails."""
    try:
        asyncio.run(_hello(address, role, timeout_s))
    except (KeyboardInterrupt, SpeedproofError):
        raise
    except Exception as error:  # Dask's comm errors, ssl's, OSError, TimeoutError
        raise SpeedproofError(f"cannot join the scheduler: {connection_problem(error, address)}") from None


async def _hello(address: str, role: str, timeout_s: float) -> None:
    from distributed.comm import connect
    from distributed.security import Security

    arguments = Security().get_connection_args(role)
    comm = await connect(address, timeout=timeout_s, **arguments)
    try:
        await asyncio.wait_for(comm.write({"op": "identity", "reply": True}), timeout_s)
        await asyncio.wait_for(comm.read(), timeout_s)
    finally:
        await comm.close()


def _chain_text(error: BaseException) -> str:
    """Every message in an exception's chain of causes, joined."""
    parts, seen = [], set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(parts)
