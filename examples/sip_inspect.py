"""Parse SIP messages from files and show what clearwater.sip makes of them.

    python examples/sip_inspect.py MESSAGE_FILE [MESSAGE_FILE ...]

Each file holds one message as it would arrive in a datagram (CRLF line ends). For each one the
start line, the validated core headers and every header's typed value (where clearwater has a
spec for it) are printed, or the ParseError a server would answer with.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clearwater.sip import ParseError, Request, parse_message
from clearwater.sip.headers import spec_for


def describe(data: bytes) -> str:
    """A human-readable account of one message, or of why it was rejected."""
    try:
        message = parse_message(data)
    except ParseError as e:
        return f"rejected: {e.status} {e.reason}"
    if isinstance(message, Request):
        lines = [f"request {message.method} {message.uri}"]
    else:
        lines = [f"response {message.status} {message.reason}"]
    lines.append(f"  call-id {message.call_id}  cseq {message.cseq}")
    seen: set[str] = set()
    for name, value in message.headers:
        spec = spec_for(name)
        if spec is not None and spec.key in seen:
            continue  # all of a header's values were shown at its first line
        if spec is None:
            lines.append(f"  {name}: {value!r} (kept as text)")
            continue
        seen.add(spec.key)
        try:
            typed = message.headers.parsed(spec)
        except ParseError as e:
            lines.append(f"  {name}: bad value ({e.reason})")
            continue
        lines.append(f"  {spec.name}: {typed!r}")
    lines.append(f"  body: {len(message.body)} bytes")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, metavar="MESSAGE_FILE")
    args = parser.parse_args(argv)
    for path in args.files:
        print(f"{path}:")
        print(describe(path.read_bytes()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
