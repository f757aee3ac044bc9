"""`iplm`: serve the appliance, probe the device."""
from __future__ import annotations

import argparse
import sys

from appliance.cli.run_probe import run_probe
from appliance.cli.run_serve import run_serve


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def _parse_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _probability(text: str) -> float:
    value = _parse_number(text)
    if not 0 <= value <= 2:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{value} is out of range (0-2)")
    return value


def _seconds(text: str) -> float:
    value = _parse_number(text)
    # 0 would make the pool's watchdog spin and kill every reply; nan or inf would never see a hang.
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a number of seconds greater than 0")
    return value


def _add_engine_overrides(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine overrides (default: what the device probe recommends)")
    group.add_argument("--model", help="a GGUF file (llama.cpp) or an MLC model directory (MLC LLM)")
    group.add_argument("--model-lib", help="compiled MLC model library (.so) for this board")
    group.add_argument("--n-ctx", type=_positive_int, help="context size in tokens")
    group.add_argument("--max-tokens", type=_positive_int, help="default reply length in tokens")
    group.add_argument("--temperature", type=_probability, help="default temperature (0-2)")
    group.add_argument("--threads", type=_positive_int, help="CPU threads per engine worker")
    group.add_argument("--workers", type=_positive_int, help="engine worker processes")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iplm", description="Interplanetary Language Models: the appliance.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the portal and the engine")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")
    serve.add_argument("--port", type=_port, default=8080, help="TCP port (default 8080; 80 on the image)")
    serve.add_argument("--data-dir", help="data directory (default: $IPLM_DATA or the XDG data dir)")
    serve.add_argument("--hang-timeout", type=_seconds, default=120.0,
                       help="seconds without a token before the engine counts as hung and restarts")
    _add_engine_overrides(serve)
    serve.set_defaults(run=run_serve)
    probe = commands.add_parser("probe", help="print what the device probe finds and recommends")
    probe.add_argument("--json", action="store_true", help="machine-readable output")
    _add_engine_overrides(probe)
    probe.set_defaults(run=run_probe)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `iplm` console script."""
    args = _build_parser().parse_args(argv)
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
