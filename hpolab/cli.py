"""The ``hpolab`` command: list the study notebooks and run them in batch.

    hpolab list
    hpolab run 01_jd_sphere --scale cpu [-p iterations 500 ...]

Bad input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from hpolab import notebooks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpolab", description="Run hpolab's study notebooks.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the notebooks with their parameters, types and defaults")
    run = commands.add_parser("run", help="run a notebook with papermill into runs/, with an HTML report")
    run.add_argument("name", help="notebook name or number (01_jd_sphere or 01)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                     help="set a parameter (a Python literal: 0.5, [0.1, 0.5], 'sphere')")
    run.add_argument("--scale", choices=["smoke", "cpu", "paper"], help="the study's scale")
    run.add_argument("--output", help="folder to write into (default runs/NAME/SCALE-TIME)")
    run.add_argument("--no-report", action="store_true", help="skip the HTML report")
    return parser


def list_notebooks() -> None:
    for name, path in notebooks.available().items():
        print(name)
        for parameter in notebooks.parameters(path).values():
            print(f"  {parameter.name}: {parameter.type} = {parameter.default!r}  # {parameter.help}")


def run_notebook(args, parser) -> None:
    try:
        path = notebooks.find(args.name)
        declared = notebooks.parameters(path)
        values = {}
        for key, text in args.parameter:
            if key not in declared:
                raise ValueError(f"parameter {key!r} is not in {path.stem}'s parameters: {sorted(declared)}")
            values[key] = notebooks.coerce(declared[key], text)
    except ValueError as error:
        parser.exit(2, f"hpolab: error: {error}\n")
    written = notebooks.execute(path.stem, values, scale=args.scale, output=args.output, report=not args.no_report)
    print(f"\n{path.stem} finished; written:")
    for kind, file in written.items():
        print(f"  {kind:<10} {file}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        list_notebooks()
    elif args.command == "run":
        run_notebook(args, parser)
    return 0


if __name__ == "__main__":
    sys.exit(main())
