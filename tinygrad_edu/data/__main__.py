"""Fetch a data set ahead of time.

    python -m tinygrad_edu.data download mnist [--data-dir DIR]
    python -m tinygrad_edu.data download fashion-mnist [--data-dir DIR]

Prints where the files are; on failure prints why, for each source tried, and exits with 2.
"""
from __future__ import annotations

import argparse
import sys
import time

from .errors import DataError
from .mnist import DATA_ENV, DATASETS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinygrad_edu.data",
                                     description="Fetch a data set ahead of time.")
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser("download", help="fetch a data set's files")
    download.add_argument("dataset", choices=sorted(DATASETS))
    download.add_argument("--data-dir", default=None,
                          help=f"data folder (default: ${DATA_ENV} or ~/.cache/tinygrad_edu)")
    args = parser.parse_args(argv)

    cls = DATASETS[args.dataset]
    start = time.perf_counter()
    try:
        folder = cls.download(args.data_dir)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{cls.__name__}: files in {folder} ({time.perf_counter() - start:.1f} s)")
    for r in cls.resources:
        print(f"  {folder / r.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
