"""Shared plumbing of the command-line tools: argparse with examples in
``--help``, and one-line errors with a non-zero exit for bad input."""
import argparse
import sys

from .errors import UserError


def parser(prog, description, examples):
    """An ArgumentParser whose --help ends with usage examples."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    return argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)


def run(main, argv=None):
    """Run main(argv); turn UserError into 'prog: error: ...' and exit code 2."""
    prog = sys.argv[0].rsplit("/", 1)[-1]
    try:
        return main(argv) or 0
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
