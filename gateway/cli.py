"""The ``euccs-gw`` command line.

Subcommands::

    euccs-gw demo [--duration S] [--json] [--federation local|mqtt]
                                               three gateways: two TETRA networks, one MCX system
    euccs-gw soak [--duration S] [--json]      bounded soak run: memory, fds, queues, journal
    euccs-gw bench [--json] [--quick]          gateway path against two bridged Mosquitto brokers
    euccs-gw bench --instances [--seconds S]   one vs two instances of a gateway, takeover time
    euccs-gw run -c de.toml [-c fr.toml ...]   run gateways from configuration files
    euccs-gw config check FILE...              validate configuration files and what they name
    euccs-gw broker acl DE=kehl FR=strasbourg  the broker's ACL (--emqx: EMQX's format)
    euccs-gw decode pei [capture.txt]          decode a PEI byte stream to JSON Lines
    euccs-gw simulate tetra [--port P] ...     a simulated TETRA network speaking PEI over TCP
    euccs-gw certs ...                         PKI: national CAs, certificates, CRLs, bundle

Exit codes: 0 success, 1 the work failed (e.g. the demo lost messages),
2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import sys
from collections.abc import Sequence
from pathlib import Path

from certs import cli as certs_cli
from gateway.logs import configure_logging
from protocols.errors import ConfigError
from protocols.schema import require_fast_backend

__all__ = ["main"]

_CHUNK = 65536


def _decode_pei(args: argparse.Namespace) -> int:
    from protocols.tetra import PeiJsonDecoder

    decoder = PeiJsonDecoder()
    out = sys.stdout
    try:
        fd = sys.stdin.fileno() if args.file is None else os.open(args.file, os.O_RDONLY)
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        while chunk := os.read(fd, _CHUNK):
            for event in decoder.feed(chunk):
                out.write(json.dumps(event, ensure_ascii=False) + "\n")
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        print(
            f"error: cannot read {args.file or 'standard input'}: {exc.strerror}", file=sys.stderr
        )
        return 2
    finally:
        if args.file is not None:
            os.close(fd)
    for event in decoder.close():
        out.write(json.dumps(event, ensure_ascii=False) + "\n")
    out.flush()
    return 0


def _broker_acl(args: argparse.Namespace) -> int:
    from gateway.members import is_member
    from gateway.mqtt_acl import generate_acl, generate_emqx_acl

    gateways: dict[str, list[str]] = {}
    for item in args.gateways:
        member, sep, names = item.partition("=")
        if not sep or not names or not is_member(member.upper()):
            print(
                f"error: {item!r} is not COUNTRY=NAME[,NAME...] (e.g. DE=kehl, or DE-2=kehl-2 "
                "for a second gateway of a split country)",
                file=sys.stderr,
            )
            return 2
        gateways.setdefault(member.upper(), []).extend(n for n in names.split(",") if n)
    try:
        text = (generate_emqx_acl if args.emqx else generate_acl)(gateways)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({len(gateways)} federation members)")
    return 0


def _config_check(args: argparse.Namespace) -> int:
    from gateway.config import file_problems, load_config
    from gateway.runner import check_together

    status = 0
    loaded = []
    for path in args.files:
        try:
            config = load_config(path)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        loaded.append(config)
        if not args.no_files and (problems := file_problems(config)):
            for problem in problems:
                print(f"error: {path}: {problem}", file=sys.stderr)
            status = 2
            continue
        print(
            f"{path}: ok: gateway {config.name} ({config.federation_member}), "
            f"{len(config.adapters)} adapter(s), {len(config.units)} unit(s), "
            f"{len(config.aliases)} alias(es), {len(config.groups)} group(s), "
            f"partners {', '.join(config.federation.partners) or 'none'}"
            + (
                f", siblings {', '.join(config.federation.siblings)}"
                * bool(config.federation.siblings)
            )
        )
    # The gateways of one (split) country run side by side on each instance: check them
    # together as run does (files of different countries may be for different machines).
    for nation in sorted({c.nation for c in loaded}):
        together = [c for c in loaded if c.nation == nation]
        if len(together) < 2:
            continue
        try:
            check_together(together)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
    return status


def _run(args: argparse.Namespace) -> int:
    from gateway.config import file_problems, load_config
    from gateway.runner import run_gateways

    configs = [load_config(path) for path in args.config]
    problems = [f"{c.source}: {p}" for c in configs for p in file_problems(c)]
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    return asyncio.run(run_gateways(configs, state_dir=args.state_dir, instance=args.instance))


#: The shortest scripted demo: France is cut off at 30 % of it and back at 60 %.
_DEMO_MIN_SECONDS = 5.0


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    if args.duration is not None:
        least = 0.0 if args.serve else _DEMO_MIN_SECONDS
        if not least <= args.duration <= 86_400:
            print(
                f"error: --duration must be between {least:g} and 86400 s, not {args.duration:g}"
                + ("" if args.serve else " (the scripted traffic needs time for the outage)"),
                file=sys.stderr,
            )
            return 2

    return asyncio.run(
        run_demo(
            duration=args.duration if args.duration is not None else (0.0 if args.serve else 20.0),
            as_json=args.json,
            seed=args.seed,
            log_level=args.log_level,
            outage=not args.no_outage,
            federation=args.federation,
            console=not args.no_console,
            serve=args.serve,
        )
    )


def _bench(args: argparse.Namespace) -> int:
    if args.instances:
        from loadtests import bench_takeover

        extra = ["--seconds", str(args.seconds)] if args.seconds is not None else []
        return bench_takeover.main(extra)
    from loadtests.federation_bench import BenchOptions
    from loadtests.federation_bench import main as bench_main

    paths = tuple(args.paths or ("gateway", "peer"))
    options = BenchOptions.quick(paths=paths) if args.quick else BenchOptions(paths=paths)
    try:
        if args.seconds is not None:
            options = options.scaled(args.seconds)
        if args.radio_lines is not None:
            options = options.with_radio_lines(args.radio_lines)
        if args.linger_ms is not None:
            options = options.with_linger(args.linger_ms)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return bench_main(options, as_json=args.json, plot=args.plot)


def _soak(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gateway.soak import run_soak

    code, _summary = asyncio.run(
        run_soak(
            duration=args.duration,
            interval=args.interval,
            rate=args.rate,
            out_dir=Path(args.out) if args.out else None,
            as_json=args.json,
            log_level=args.log_level,
            dedup_window=args.dedup_window,
        )
    )
    return code


def _simulate_mcdata(argv: Sequence[str]) -> int:
    from adapters.mcdata.simulator import main as simulator_main

    return simulator_main(argv)


def _simulate_tetra(argv: Sequence[str]) -> int:
    from adapters.tetra.simulator import main as simulator_main

    return simulator_main(argv)


def _bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``euccs-gw bench`` and its options."""
    bench = sub.add_parser(
        "bench",
        help="throughput, latency and the emergency test: gateway path vs bridged Mosquitto",
        description=(
            "Runs, in one invocation on this machine (loopback only), the gateway path "
            "(TETRA PEI -> gateway -> MQTT 5 over mutual TLS -> gateway -> TETRA PEI) and the "
            "peer path (two Mosquitto brokers bridged over mutual TLS), and reports for each "
            "the capacity, latency at 25/50/90 %% of capacity and the emergency test at 2x "
            "overload. Progress goes to stderr; with --json the last line of stdout is one "
            "JSON object with the figures and the gateway/peer ratios. Needs mosquitto."
        ),
    )
    bench.add_argument("--json", action="store_true", help="print the summary as JSON last")
    bench.add_argument(
        "--instances",
        action="store_true",
        help="instead: a country split over two gateways on one, then two instances "
        "([cluster] home, PostgreSQL): throughput ratio, cores used, takeover time after "
        "SIGKILL (docs/scaling.md)",
    )
    bench.add_argument(
        "--quick", action="store_true", help="short phases (about 40 s in all): a smoke run"
    )
    bench.add_argument(
        "--seconds",
        type=float,
        metavar="S",
        help="length of each measuring phase in seconds (default 10; the run is about 10 x S)",
    )
    bench.add_argument(
        "--path",
        dest="paths",
        action="append",
        choices=("gateway", "peer"),
        help="measure only this path (repeatable; default both)",
    )
    bench.add_argument(
        "--radio-lines",
        type=int,
        metavar="N",
        help="radio lines (PEI connections) of the destination gateway, texts to each in turn "
        "(default 8: a radio line submits one SDS at a time)",
    )
    bench.add_argument(
        "--linger-ms",
        type=float,
        metavar="MS",
        help="the gateways' federation batch linger (linger_ms of [federation.mqtt], default "
        "5): shorter lowers latency at light load and costs capacity (docs/performance.md)",
    )
    bench.add_argument(
        "--plot", metavar="PNG", help="also draw latency against load for both paths to PNG"
    )
    bench.set_defaults(func=_bench, paths=None)


def _broker_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    broker = sub.add_parser("broker", help="the federation's MQTT broker")
    broker_sub = broker.add_subparsers(dest="broker_command", required=True, metavar="ACTION")
    acl = broker_sub.add_parser(
        "acl",
        help="write the broker's ACL: each gateway publishes from and reads for its country",
        description="Each gateway may publish only batches from its own country (or member "
        "id, DE-2, for a gateway of a split country) and its own presence, and read only "
        "batches for it and the gateways' presence; any other certificate (consoles, the "
        "broker's own) gets no access.",
    )
    acl.add_argument(
        "gateways",
        nargs="+",
        metavar="COUNTRY=NAME[,NAME...]",
        help="each country's gateway name(s) as in their certificates, e.g. DE=kehl; "
        "a split country's further members as DE-2=kehl-2",
    )
    acl.add_argument("--emqx", action="store_true", help="EMQX 5 acl.conf instead of Mosquitto's")
    acl.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    acl.set_defaults(func=_broker_acl)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="euccs-gw",
        description="Cross-border critical communication gateway (TETRA, MCData, federation).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run three national gateways: two on simulated TETRA networks, one on an MCX system",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="seconds of traffic (default 20); with --serve: seconds to serve (default: until"
        " interrupted)",
    )
    demo.add_argument(
        "--serve",
        default=None,
        metavar="ENV_FILE",
        help="no scripted traffic: open the simulators' HTTP control interfaces for load tests,"
        " write their EUCCS_* environment to ENV_FILE and serve until interrupted",
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help="narrate on stderr; print one JSON summary as the last stdout line",
    )
    demo.add_argument("--seed", type=int, default=1, help="random seed of the traffic mix")
    demo.add_argument(
        "--no-console",
        action="store_true",
        help="do not serve the control-room APIs and consoles (served by default, mutual TLS)",
    )
    demo.add_argument(
        "--no-outage",
        action="store_true",
        help="keep both countries connected (by default France is cut off mid-run)",
    )
    demo.add_argument(
        "--federation",
        default="local",
        choices=["local", "mqtt"],
        help="embedded bus (default) or a local Mosquitto broker with mutual TLS",
    )
    demo.add_argument(
        "--log-level",
        default="off",
        choices=["debug", "info", "warning", "error", "off"],
        help="structured gateway logs on stderr (default off)",
    )
    demo.set_defaults(func=_demo)

    _bench_parser(sub)

    soak = sub.add_parser("soak", help="bounded soak run: memory, fds, queues, journal over time")
    soak.add_argument(
        "--duration", type=float, default=600.0, metavar="S", help="seconds (default 600)"
    )
    soak.add_argument(
        "--interval", type=float, default=5.0, metavar="S", help="seconds between samples"
    )
    soak.add_argument("--rate", type=float, default=50.0, help="messages per second (default 50)")
    soak.add_argument(
        "--out", metavar="DIR", help="where soak.csv and soak.png go (default ./soak-<time>)"
    )
    soak.add_argument(
        "--json", action="store_true", help="progress on stderr; JSON summary as last stdout line"
    )
    soak.add_argument(
        "--dedup-window",
        type=float,
        default=60.0,
        metavar="S",
        help="the gateways' duplicate-suppression window (default 60 s, so that the journal "
        "reaches its steady size within the run; message lifetimes are half of it)",
    )
    soak.add_argument(
        "--log-level", default="off", choices=["debug", "info", "warning", "error", "off"]
    )
    soak.set_defaults(func=_soak)

    run = sub.add_parser("run", help="run gateways from configuration files (one process)")
    run.add_argument(
        "-c",
        "--config",
        action="append",
        required=True,
        metavar="FILE",
        help="a gateway's configuration (TOML); repeat to run several gateways in one process",
    )
    run.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error", "off"]
    )
    run.add_argument(
        "--state-dir",
        default="state",
        metavar="DIR",
        help="where journals live unless a configuration names its own (default ./state)",
    )
    run.add_argument(
        "--instance",
        metavar="ID",
        help="this instance's id for [cluster] configurations (default: [cluster] instance, "
        "else $EUCCS_INSTANCE, else <host>-<pid>)",
    )
    run.set_defaults(func=_run)

    certs_cli.register(sub)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser(
        "check",
        help="validate configuration files and the certificates, keys and bundles they name",
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument(
        "--no-files",
        action="store_true",
        help="check the text only, not the files it names (a template for another machine)",
    )
    check.set_defaults(func=_config_check)

    _broker_parser(sub)

    decode = sub.add_parser("decode", help="decode captured protocol streams")
    decode_sub = decode.add_subparsers(dest="decode_command", required=True, metavar="PROTOCOL")
    pei = decode_sub.add_parser(
        "pei",
        help="TETRA PEI stream on stdin -> JSON Lines on stdout",
        description="Decode a captured TETRA PEI byte stream (AT commands, responses and "
        "unsolicited results such as +CTSDSR with their SDS user data, ETSI EN 300 392-5) "
        "into one JSON object per event. Bytes it cannot decode become decode_error events; "
        "the exit code is 0 whatever the input.",
    )
    pei.add_argument(
        "file", nargs="?", metavar="FILE", help="the capture to read (default: standard input)"
    )
    pei.set_defaults(func=_decode_pei)

    simulate = sub.add_parser("simulate", help="simulated national systems for exercises")
    simulate_sub = simulate.add_subparsers(dest="simulate_command", required=True, metavar="SYSTEM")
    # Its options belong to the simulator (see `euccs-gw simulate tetra --help`); main()
    # hands them over before this parser runs.
    simulate_sub.add_parser("tetra", help="a TETRA network speaking PEI over TCP")
    simulate_sub.add_parser("mcdata", help="an MCX system: MCData SDS over SIP/TCP")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if sys.stdout is None:  # started with standard output closed: what it says goes nowhere
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    try:
        require_fast_backend()
        if arguments[:2] == ["simulate", "tetra"]:
            return _simulate_tetra(arguments[2:])
        if arguments[:2] == ["simulate", "mcdata"]:
            return _simulate_mcdata(arguments[2:])
        args = _parser().parse_args(arguments)
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        if sys.stdout is None or not _stdout_broken():
            raise  # not our output (a gateway's log reader gone): a failure like any other
        # The reader of our output went away (`| head`): stop quietly, as a filter does.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


def _stdout_broken() -> bool:
    """True if standard output is a pipe whose reader went away."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _fd, events in poller.poll(0))


if __name__ == "__main__":
    sys.exit(main())
