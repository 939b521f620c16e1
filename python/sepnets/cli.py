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


def int_range(lo, hi=None):
    """An argparse type: an integer in [lo, hi] (hi None: no upper bound).

    Out-of-range values would otherwise reach the code as a traceback
    (``--digits -1`` in a format spec, ``--dpi 0`` in matplotlib), as a bad
    result (``--seed -1`` in numpy) or as unbounded memory (``--batches
    1000000000``); argparse turns the ArgumentTypeError into its usual
    one-line ``prog: error: argument --x: ...`` with exit 2.
    """
    def parse(text):
        try:
            v = int(text, 10)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < lo or (hi is not None and v > hi):
            want = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
            raise argparse.ArgumentTypeError(f"{v} is out of range (want {want})")
        return v
    parse.__name__ = "integer"
    return parse


def input_shape(text, option="--input-shape"):
    """C,H,W of an --input-shape option: three positive integers, or one line
    saying what is wrong (model_summary and export_onnx take the same option)."""
    try:
        dims = tuple(int(x) for x in text.split(","))
        if len(dims) != 3 or min(dims) < 1:
            raise ValueError
        return dims
    except ValueError:
        raise UserError(option, f"'{text}' is not C,H,W (three positive integers)") from None
