"""The ``hpolab`` command: list the study notebooks, run them in batch, sweep and report.

    hpolab list
    hpolab run 01_jd_sphere --scale cpu [-p iterations 500 ...]
    hpolab sweep 01_jd_sphere --grid p=0.1,0.5,0.9 --scale smoke [--workers 2 | --address tcp://host:8786]
    hpolab report [01_jd_sphere | runs/sweeps/01_jd_sphere]
    hpolab site [--scale cpu] [--output site]
    hpolab claims [--scale cpu] [--runs results/cpu] [--markdown docs/claims-cpu.md] [--keep results/cpu]

Bad input ends with one line on stderr and exit status 2; a sweep with a failed run ends
with status 1 once every run is done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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

    sweep = commands.add_parser(
        "sweep", help="run a notebook for every combination of a grid, each run cached in runs/sweeps/NAME/",
        description="Run a notebook for every combination of the --grid values. Each run is cached by its "
                    "parameters: a finished run is never recomputed, so the same command resumes an interrupted "
                    "sweep. A grid key may name one element of a list parameter KEY_values or KEYs "
                    "(p=0.1,0.5 runs p_values=[0.1] and p_values=[0.5]).")
    sweep.add_argument("name", help="notebook name or number (01_jd_sphere or 01)")
    sweep.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2",
                       help="a parameter and its values (Python literals, commas inside brackets kept); repeat "
                            "for more parameters")
    sweep.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                       help="a parameter every run shares (a Python literal)")
    sweep.add_argument("--scale", choices=["smoke", "cpu", "paper"], help="the study's scale")
    sweep.add_argument("--workers", type=positive, default=1, help="local worker processes (default 1)")
    sweep.add_argument("--address", help="run on the Dask cluster whose scheduler is there (tcp://host:8786)")
    sweep.add_argument("--timeout", type=float, default=10.0, help="seconds to reach the cluster (default 10)")
    sweep.add_argument("--retry-failed", action="store_true", help="run the failed runs again")
    sweep.add_argument("--no-report", action="store_true", help="skip each run's HTML report")

    report = commands.add_parser("report", help="one table and one figure across the runs of a sweep")
    report.add_argument("target", nargs="?",
                        help="notebook name (its last sweep) or sweep folder; default: the last sweep")
    report.add_argument("--metric", help="the summary column plotted (default: the first 'best...' column)")
    report.add_argument("--output", help="the HTML file (default SWEEP_FOLDER/report.html)")

    claims = commands.add_parser(
        "claims", help="the papers' claims as checked by the latest run of every notebook",
        description="One table over the latest run of every notebook (its claims.csv): each paper claim, what "
                    "the run measured and the verdict. Declared claims no run has checked are listed as 'not run'.")
    claims.add_argument("--scale", choices=["smoke", "cpu", "paper"], help="only runs at this scale")
    claims.add_argument("--runs", help="folder of runs, RUNS/<notebook>/<run>/claims.csv (default: runs/)")
    claims.add_argument("--markdown", metavar="FILE", help="also write the table as a Markdown page")
    claims.add_argument("--keep", metavar="DIR",
                        help="copy the latest runs' small files (claims, summary, run record) into DIR/<notebook>/ "
                             "(needs --scale), e.g. results/cpu, the results a commit keeps")

    site = commands.add_parser(
        "site", help="a static, offline results site from the latest run of every notebook",
        description="Copy the HTML report of the latest finished run of every notebook into one folder with an "
                    "index page (notebook, paper, figure, scale, date, wall time, claims verdicts).")
    site.add_argument("--scale", choices=["smoke", "cpu", "paper"], help="only runs at this scale")
    site.add_argument("--runs", help="folder of runs, RUNS/<notebook>/<run>/ (default: runs/)")
    site.add_argument("--output", default="site", help="the site's folder (default site/; replaced)")
    return parser


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    try:
        written = notebooks.execute(path.stem, values, scale=args.scale, output=args.output,
                                    report=not args.no_report)
    except notebooks.BadParameter as error:
        parser.exit(2, f"hpolab: error: {error}\n")
    print(f"\n{path.stem} finished; written:")
    for kind, file in written.items():
        print(f"  {kind:<10} {file}")


def sweep_notebook(args, parser) -> int:
    """``hpolab sweep``: 0 when every run finished, 1 when one failed, 130 when interrupted."""
    from hpolab import sweep

    client = None
    try:
        plan = sweep.plan(args.name, args.grid, args.parameter, scale=args.scale)
        if args.address:
            client = sweep.connect(args.address, timeout=args.timeout)
    except ValueError as error:
        parser.exit(2, f"hpolab: error: {error}\n")
    if client is not None:
        where = f"the Dask cluster at {args.address}"
        executor = lambda tasks: sweep.run_dask(tasks, client)  # noqa: E731
    else:
        where = f"{args.workers} local worker process{'es' if args.workers > 1 else ''}"
        executor = lambda tasks: sweep.run_local(tasks, args.workers)  # noqa: E731
    try:
        counts = sweep.run_sweep(plan, executor, retry_failed=args.retry_failed, report=not args.no_report,
                                 where=where)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume (finished runs are kept)", file=sys.stderr)
        return 130
    finally:
        if client is not None:
            client.close()
    print(f"{counts['runs']} runs: {counts['cached']} cached, {counts['finished']} finished now, "
          f"{counts['failed']} failed now; table and figure: hpolab report {plan.notebook}")
    failed = [run for run in plan.runs if (sweep.read_status(run.folder) or {}).get("status") == sweep.FAILED]
    if failed:
        print(f"{len(failed)} failed (see hpolab report; --retry-failed runs them again)")
    return 1 if failed else 0


def report_sweep(args, parser) -> int:
    from hpolab import sweep_report

    try:
        written = sweep_report.write_report(sweep_report.find_sweep(args.target), metric=args.metric, html=args.output)
    except ValueError as error:
        parser.exit(2, f"hpolab: error: {error}\n")
    print(written["text"])
    print(f"\nwritten:\n  full table  {written['csv']}\n  report      {written['html']}")
    return 0


def show_claims(args, parser) -> int:
    from hpolab import claims

    root = args.runs or notebooks.runs_dir()
    if args.keep:
        if not args.scale:
            parser.exit(2, "hpolab: error: --keep needs --scale (the scale whose runs are kept)\n")
        kept = claims.keep(root, args.keep, args.scale)
        print(f"kept {len(kept)} runs in {args.keep}")
        root = args.keep
    table = claims.collect(root, args.scale)
    for notebook, rows in table.groupby("notebook", sort=False):
        wall = float(rows["wall seconds"].iloc[0])
        timing = f", {wall / 60:.1f} min" if wall == wall else ""
        print(f"{notebook} ({rows['started'].iloc[0] or 'not run'}{timing})")
        for row in rows.to_dict("records"):
            print(f"  {row['verdict']:<17} {row['claim']}: {row['we measured'] or '-'}")
    counts = table["verdict"].value_counts()
    print("\n" + ", ".join(f"{int(n)} {v}" for v, n in counts.items()) + f" (of {len(table)} claims)")
    if args.markdown:
        title = f"Claims ledger, {args.scale} scale" if args.scale else "Claims ledger"
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(claims.markdown(table, title))
        print(f"written: {args.markdown}")
    return 0


def build_site(args, parser) -> int:
    from hpolab import site

    try:
        index = site.build(args.runs or notebooks.runs_dir(), args.output, args.scale)
    except ValueError as error:
        parser.exit(2, f"hpolab: error: {error}\n")
    print(f"written: {index} (open it in a browser; it works offline)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        list_notebooks()
    elif args.command == "run":
        run_notebook(args, parser)
    elif args.command == "sweep":
        return sweep_notebook(args, parser)
    elif args.command == "report":
        return report_sweep(args, parser)
    elif args.command == "site":
        return build_site(args, parser)
    elif args.command == "claims":
        return show_claims(args, parser)
    return 0


if __name__ == "__main__":
    sys.exit(main())
