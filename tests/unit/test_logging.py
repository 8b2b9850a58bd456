"""What the pipeline's commands print to stderr: epipe's own reports, not its libraries' repeats."""

import subprocess
import sys

# run in a process of its own: logging's configuration is global, and pytest's is in place here
_LOG = """
import logging, sys
from epipe.cli.pipeline import _logging
_logging(verbose=sys.argv[1] == "verbose")
logging.getLogger("epipe.pipeline.runner").warning("lost the metadata database; retrying")
logging.getLogger("psycopg").warning("error ignored terminating <psycopg.Pipeline [BAD]>: lost")
logging.getLogger("psycopg").error("a failure of its own")
"""


def logged(mode: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _LOG, mode], capture_output=True, text=True, check=True
    )
    return [line.split(" ", 2)[2] for line in done.stderr.splitlines()]


def test_a_lost_connection_is_reported_once() -> None:
    assert logged("quiet") == [
        "WARNING epipe.pipeline.runner: lost the metadata database; retrying",
        "ERROR psycopg: a failure of its own",
    ]


def test_verbose_shows_the_libraries_warnings_too() -> None:
    assert "WARNING psycopg: error ignored terminating <psycopg.Pipeline [BAD]>: lost" in logged(
        "verbose"
    )
