#!/usr/bin/env python3
"""Health of one epipe container, for the healthchecks of compose/docker-compose.yml.

    epipe-healthcheck tail             the replication slot EPIPE_SLOT streams to a tailer
    epipe-healthcheck consumer NAME    consumer NAME has registered and does not wait for its view
    epipe-healthcheck http URL         URL answers 2xx (epipe serve's /healthz)

The first two read `epipe status --json`, as a person would. Exit 0 when healthy; otherwise
exit 1 and one line on stderr saying why (`docker inspect` shows it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

TIMEOUT = 10.0  # seconds; the compose file gives each check more


class Unhealthy(Exception):
    pass


def tail_problem(status: dict[str, Any]) -> str | None:
    """Why the tailer is not healthy, or None."""
    slot = status.get("slot")
    if slot is None:
        return "no replication slot yet"
    if not slot.get("active"):
        return f"replication slot {slot.get('name')} is not streaming to a tailer"
    return None


def consumer_problem(status: dict[str, Any], name: str) -> str | None:
    """Why consumer `name` is not healthy, or None."""
    for consumer in status.get("consumers", []):
        if consumer.get("name") == name:
            waiting = consumer.get("waiting")
            return f"consumer {name} waits: {waiting}" if waiting else None
    return f"consumer {name} has not registered"


def read_status() -> dict[str, Any]:
    try:
        done = subprocess.run(
            ["epipe", "status", "--json"],
            check=False,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unhealthy(f"epipe status: {exc}") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise Unhealthy(lines[-1] if lines else f"epipe status exited {done.returncode}")
    try:
        status: dict[str, Any] = json.loads(done.stdout)
    except ValueError as exc:
        raise Unhealthy(f"epipe status --json: {exc}") from None
    return status


def http_problem(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
            code = int(answer.status)
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"
    return None if 200 <= code < 300 else f"{url} answered {code}"


def main(argv: list[str]) -> int:
    try:
        match argv:
            case ["tail"]:
                problem = tail_problem(read_status())
            case ["consumer", name]:
                problem = consumer_problem(read_status(), name)
            case ["http", url]:
                problem = http_problem(url)
            case _:
                print(__doc__, file=sys.stderr)
                return 1  # Docker reserves 2
    except Unhealthy as exc:
        problem = str(exc)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
