"""Command line: ``python -m xcs demo`` runs the demo; ``python -m xcs --help`` lists commands."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xcs",
        description="xcs: put @jit on a plain Python function and its independent calls "
                    "run in parallel, with the same results.")
    commands = parser.add_subparsers(dest="command", metavar="command")
    demo = commands.add_parser(
        "demo", help="run a compound-AI program on a simulated model, plain vs jit",
        description="Summaries of several documents, drafts from several models and a judge, "
                    "on a built-in simulated model with latency (no network). Prints the plain "
                    "time, the jit time and the speedup.")
    demo.add_argument("--latency", type=float, default=0.2, metavar="SECONDS",
                      help="simulated latency of one model call (default: %(default)s)")
    demo.add_argument("--docs", type=int, default=8, help="documents to summarize (default: 8)")
    demo.add_argument("--models", type=int, default=3, help="models that draft (default: 3)")
    demo.add_argument("--base-url", metavar="URL",
                      help="run against a real OpenAI-compatible endpoint (needs the openai "
                           "package; the key is read from OPENAI_API_KEY)")
    demo.add_argument("--model", default="gpt-4o-mini",
                      help="model name to ask for with --base-url (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.latency <= 0 or args.docs < 1 or args.models < 1:
        parser.error("--latency must be positive, --docs and --models at least 1")
    if args.base_url is not None:
        try:
            import openai  # noqa: F401
        except ImportError:
            parser.error("--base-url needs the openai package: pip install openai")
    from xcs._demo import run

    return 0 if run(args.latency, args.docs, args.models, base_url=args.base_url,
                    model=args.model) else 1


if __name__ == "__main__":
    sys.exit(main())
