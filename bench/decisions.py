"""Decisions over HTTP, driven by ``wrk``: the online benchmark's throughput and latency.

A Lua script asks ``POST /v1/decisions`` about random subjects for a mix of services with
a relying party's key. :func:`bench_decisions` checks 50 decisions one by one first, then
runs a warm-up, the timed runs and a sweep of connection counts; it reports requests/s,
p50, p99 and the server's CPU time per decision, medians over the runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.server import Server, request
from bench.store import OUT, Built


def ensure_wrk() -> str:
    """The path of ``wrk``; installed with apt-get (Debian/Ubuntu) when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        raise SystemExit("wrk is not installed and apt-get is not available: install wrk")
    sudo: list[str] = [] if os.geteuid() == 0 else ["sudo", "-n"]
    print("wrk is missing: installing it with apt-get…", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, apt, "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, apt, "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get did not install wrk")
    return found


WRK_SCRIPT = """
-- POST /v1/decisions about random subjects (ids from a file) for random services.
local ids = {}
local services = {%(services)s}
local key = ""
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  key = args[2]
  math.randomseed(os.time() * 1000 + (tid or 0))
end

function request()
  local id = ids[math.random(#ids)]
  local service = services[math.random(#services)]
  local body = '{"service":"' .. service .. '","subject_id":"' .. id .. '"}'
  return wrk.format("POST", "/v1/decisions",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
end
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(output: str) -> dict[str, float]:
    """requests/s, p50/p75/p90/p99 (ms), requests and errors from ``wrk --latency``."""
    result: dict[str, float] = {}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M):
        result[f"p{pct}"] = float(value) * _UNITS[unit]
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if rps is None or total is None or "p99" not in result:
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    result["rps"] = float(rps.group(1))
    result["requests"] = float(total.group(1))
    result["errors"] = float(non2xx.group(1)) if non2xx else 0.0
    result["socket_errors"] = float(sum(int(g) for g in sock.groups())) if sock else 0.0
    return result


def run_wrk(
    wrk: str,
    port: int,
    script: Path,
    ids_file: Path,
    key: str,
    *,
    duration: float,
    connections: int,
    threads: int,
) -> dict[str, float]:
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/v1/decisions",
        "--",
        str(ids_file),
        key,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 60, check=True
    )
    return parse_wrk(done.stdout)


def preflight(port: int, ids: Sequence[str], key: str, services: Sequence[str]) -> dict[str, int]:
    """Ask a few decisions one by one: every one must succeed (a benchmark of errors is
    worthless); returns the outcomes seen."""
    outcomes: dict[str, int] = {}
    rng = np.random.default_rng(1)
    for k in range(50):
        body = {
            "service": services[k % len(services)],
            "subject_id": ids[int(rng.integers(len(ids)))],
        }
        status, answer = request(port, "POST", "/v1/decisions", body, key)
        if status != 200:
            raise SystemExit(f"preflight decision failed ({status}): {answer}")
        outcomes[answer["outcome"]] = outcomes.get(answer["outcome"], 0) + 1
    return outcomes


def bench_decisions(
    args: argparse.Namespace, wrk: str, server: Server, built: Built, ids: Sequence[str]
) -> dict[str, Any]:
    services = args.services.split(",")
    key = built.manifest["keys"]["party"]
    port = server.port
    outcomes = preflight(port, ids, key, services)
    script = OUT / "online-decisions.lua"
    script.write_text(WRK_SCRIPT % {"services": ", ".join(f'"{s}"' for s in services)})

    def run(duration: float, connections: int) -> dict[str, float]:
        cpu = server.cpu_seconds()
        got = run_wrk(
            wrk,
            port,
            script,
            built.ids_file,
            key,
            duration=duration,
            connections=connections,
            threads=args.wrk_threads,
        )
        # Server CPU per decision: what the rate would be on a core of its own.
        got["server_cpu_us"] = (server.cpu_seconds() - cpu) / max(got["requests"], 1) * 1e6
        return got

    print(f"decisions: warm-up {args.warmup:g} s…", flush=True)
    run(args.warmup, args.connections)
    runs = []
    for r in range(args.runs):
        got = run(args.duration, args.connections)
        print(
            f"  run {r + 1}: {got['rps']:,.0f} decisions/s, p50 {got['p50']:.2f} ms, "
            f"p99 {got['p99']:.2f} ms, server CPU {got['server_cpu_us']:.0f} µs/decision, "
            f"errors {got['errors']:.0f}",
            flush=True,
        )
        runs.append(got)
    sweep = {}
    for connections in [int(c) for c in args.sweep.split(",") if c]:
        got = run(args.sweep_duration, connections)
        print(
            f"  {connections} connections: {got['rps']:,.0f} decisions/s, "
            f"p50 {got['p50']:.2f} ms, p99 {got['p99']:.2f} ms",
            flush=True,
        )
        sweep[connections] = got
    metrics = ("rps", "p50", "p90", "p99", "server_cpu_us")
    return {
        "services": services,
        "preflight_outcomes": outcomes,
        "runs": runs,
        **{m: statistics.median(r[m] for r in runs) for m in metrics},
        "errors": sum(r["errors"] + r["socket_errors"] for r in runs)
        + sum(r["errors"] + r["socket_errors"] for r in sweep.values()),
        "connections": args.connections,
        "threads": args.wrk_threads,
        "sweep": sweep,
    }
