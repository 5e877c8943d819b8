"""``python -m rosenblatt playground [--port N] [--host H] [--experiments] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rosenblatt playground",
        description="A local neural-network playground (the TensorFlow Playground, on "
                    "rosenblatt's core), or its exercise answered headless.")
    p.add_argument("--host", default="127.0.0.1",
                   help="loopback address to bind (127.0.0.1, ::1 or localhost); "
                        "default 127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.add_argument("--experiments", action="store_true",
                   help="run exercise 11-2 steps a-f headless and write a report")
    p.add_argument("--out", default="playground-report",
                   help="report directory for --experiments (default ./playground-report)")
    p.add_argument("--quick", action="store_true",
                   help="--experiments at tiny sizes (a smoke test, not the answer)")
    p.add_argument("--seeds", type=int, default=None,
                   help="--experiments: seeds per configuration (default 20, quick 2)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.experiments:
        from .experiments import run

        path = run(args.out, quick=args.quick, seeds=args.seeds)
        print(f"report written to {path}")
        return 0
    if not 0 <= args.port <= 65535:
        print(f"error: --port must be in [0, 65535], got {args.port}", file=sys.stderr)
        return 2
    try:
        from .server import check_loopback, serve
    except ImportError as e:
        print(f"error: the playground server needs aiohttp ({e}); "
              "install it with: pip install 'rosenblatt[playground]'", file=sys.stderr)
        return 2
    try:
        check_loopback(args.host)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return serve(args.host, args.port, open_browser=args.open)
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
