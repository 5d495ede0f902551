"""The ``pyclosure`` command: demo, info, replay, bench, config."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from . import config

__all__ = ["build_parser", "main"]


def _config(args: argparse.Namespace) -> int:
    answers = config.flags()
    chosen = [name for name in answers if getattr(args, name.replace("-", "_"))]
    if not chosen:
        for name, value in answers.items():
            print(f"--{name:<16} {value}")
        return 0
    print(" ".join(answers[name] for name in chosen))
    return 0


def _info(args: argparse.Namespace) -> int:
    from .contract import describe, is_package, read_contract, read_package_metadata

    contract = read_contract(args.model)  # a .pt2 package is read as a zip: its library is not loaded
    if is_package(args.model):
        aoti = read_package_metadata(args.model)
        print(
            f"{args.model}: an AOTInductor package (native code, not loaded to read this): built for "
            f"{aoti.get('AOTI_MACHINE', '?')} {aoti.get('AOTI_DEVICE_KEY', '?')}, "
            f"vector ISA {aoti.get('AOTI_CPU_ISA') or 'none'}"
        )
        if contract is None:
            print("no pyclosure contract (calls are checked by torch only)")
    elif contract is None:
        print(
            f"{args.model}: a plain TorchScript file with no pyclosure contract (calls are checked by torch only)"
        )
    if contract is not None:
        print(describe(contract))
    if args.bridge:
        from .bridge import Model, version

        model = Model(args.model)
        engine = (
            f"{model.engine} engine"
            if model.engine != "native"
            else "native engine (the native kernels, no libtorch in its calls)"
        )
        print(
            f"loaded through the C bridge {version()[0]} (libtorch {version()[1]}): {engine} on {model.device}"
        )
    return 0


def _built_without(part: str) -> int:
    """The message and status of a command whose part of pyclosure this build left out."""
    print(
        f"pyclosure {part}: this pyclosure was built without the {part} (meson option -D{part}=false); "
        f"rebuild it with -D{part}=true (the default)",
        file=sys.stderr,
    )
    return 2


def _demo(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("pyclosure.demo") is None:
        return _built_without("demo")
    if args.example == "online":
        if args.engine != "pt2" or args.no_pt2:
            print(
                "pyclosure demo: --engine and --no-pt2 do not apply to --example online (it trains the "
                "TorchScript closure.pt)",
                file=sys.stderr,
            )
            return 2
        from .demo.online import run as run_online

        return run_online(out=args.out or "pyclosure-demo-online", quick=args.quick)
    if args.example == "column":
        if args.engine != "pt2":
            print(
                "pyclosure demo: --engine applies to the Burgers demo (the column example runs every engine)",
                file=sys.stderr,
            )
            return 2
        from .demo.column import run as run_column

        return run_column(out=args.out or "pyclosure-demo-column", quick=args.quick, pt2=not args.no_pt2)
    if args.no_pt2:
        print(
            "pyclosure demo: --no-pt2 applies to --example column only (the Burgers demo runs its .pt2)",
            file=sys.stderr,
        )
        return 2
    from .demo import run

    return run(out=args.out or "pyclosure-demo", quick=args.quick, engine=args.engine)


def _replay(args: argparse.Namespace) -> int:
    import json

    from .replay import format_report, replay

    threads = None if args.threads == "recorded" else int(args.threads)
    report = replay(
        args.directory,
        args.model,
        threads=threads,
        device=args.device,
        use_torch=not args.no_torch,
        budgets=not args.no_budgets,
        cell_update=args.cell_update,
        rtol=args.rtol,
        allow_other_model=args.allow_other_model,
        reference=args.reference,
        versions=args.versions,
    )
    out = args.report or str(Path(args.directory) / "replay_report.json")
    Path(out).write_text(json.dumps(report, indent=1) + "\n")
    print(format_report(report))
    print(f"report: {out}")
    return 0 if report["summary"]["ok"] else 1


def _bench(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("pyclosure.bench") is None:
        return _built_without("bench")
    if args.train_step:
        from .bench import train_step

        argv = ["--rounds", str(args.rounds or 5)] + (["--json", args.json] if args.json else [])
        argv += ["--columns", *map(str, args.batches)] if args.batches else []
        return train_step.main(argv)
    from .bench import Settings, run

    if args.kernels:
        from .bench import native
        from .errors import ArgumentError

        unused = [
            f"--{k.replace('_', '-')}"
            for k in ("threads", "device", "keep", "pt2_cache", "quick")
            if getattr(args, k) not in (None, False, "cpu")
        ]
        if unused:
            raise ArgumentError(
                "pyclosure bench --kernels runs one thread on the CPU; it takes no " + ", ".join(unused)
            )
        native.run(
            args.models or native.models.NAMES,
            args.batches or native.BATCHES,
            args.rounds or 7,
            json_path=args.json,
            isas=args.isa or ("auto",),
        )
        return 0
    if args.isa:
        from .errors import ArgumentError

        raise ArgumentError("--isa chooses the native kernels of pyclosure bench --kernels; add --kernels")
    chosen = {
        "models": args.models,
        "batches": args.batches,
        "threads": args.threads,
        "rounds": args.rounds,
        "device": args.device,
    }
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in chosen.items() if v is not None}
    if args.default_malloc:
        kw["malloc_tunables"] = ""
    if args.no_pt2:
        kw["pt2_models"] = ()
    if args.no_native:
        kw["native_models"] = ()
    if args.pt2_cache is not None:
        kw["pt2_cache"] = args.pt2_cache
    settings = Settings.for_quick(**kw) if args.quick else Settings(**kw)
    run(settings, json_path=args.json, keep=args.keep)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``pyclosure`` command line: one subcommand per task."""
    parser = argparse.ArgumentParser(prog="pyclosure", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_config, _add_info, _add_demo, _add_replay, _add_bench):
        add(sub)
    return parser


def _add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="flags to build a host model against the bridge (like nf-config)")
    for name in config.flags():
        p.add_argument(f"--{name}", action="store_true")
    p.set_defaults(func=_config)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a model file's contract")
    p.add_argument("model")
    p.add_argument("--bridge", action="store_true", help="also load it through the C bridge")
    p.set_defaults(func=_info)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the end-to-end demo: train, export, run from Fortran, check")
    p.add_argument(
        "--example",
        choices=["burgers", "column", "online"],
        default="burgers",
        help="burgers (default): a flux closure for Burgers turbulence; column: an emulator of a "
        "Fortran longwave radiation scheme in a single-column model; online: the Burgers LES "
        "learns its closure while it runs, from a DNS companion",
    )
    p.add_argument(
        "--out",
        help="output folder (default: ./pyclosure-demo, ./pyclosure-demo-column, ./pyclosure-demo-online)",
    )
    p.add_argument("--quick", action="store_true", help="a smaller, faster version (used by the tests)")
    p.add_argument(
        "--engine",
        choices=("pt2", "native"),
        default="pt2",
        help="what the coupled runs call: closure.pt2 (AOTInductor, default) or closure.nnp (the "
        "native engine)",
    )
    p.add_argument(
        "--no-pt2", action="store_true", help="column: skip the AOTInductor export and its cost row"
    )
    p.set_defaults(func=_demo)


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="replay recorded calls: bit-for-bit and budgets (exit 1 on a real failure)"
    )
    p.add_argument("directory", help="folder with record_*.npz files (searched recursively)")
    p.add_argument("--model", required=True, help="the model file the run used")
    p.add_argument("--report", help="JSON report path (default: DIRECTORY/replay_report.json)")
    p.add_argument(
        "--threads",
        default="recorded",
        help="intra-op threads for the replay (default: each record's own count)",
    )
    p.add_argument("--device", default="cpu", help="device to replay on (default cpu)")
    p.add_argument(
        "--cell-update",
        choices=["exact", "bounded"],
        default="exact",
        help="cells must equal the update bit for bit (exact) or within its rounding bound",
    )
    p.add_argument(
        "--rtol",
        type=float,
        default=None,
        help="relative tolerance (max|diff| / max|recorded| per output) at a setting where bit for bit "
        "is not promised (default: 1e-12 for float64, 1e-5 for float32)",
    )
    p.add_argument(
        "--allow-other-model",
        action="store_true",
        help="replay against a model file whose SHA-256 is not the recorded one (reported; never "
        "printed as OK)",
    )
    p.add_argument(
        "--reference",
        help="another export of the same weights (e.g. the TorchScript file beside a "
        ".pt2): its difference from the records is reported, never a failure",
    )
    p.add_argument("--no-torch", action="store_true", help="replay through the bridge only")
    p.add_argument(
        "--versions",
        help="the weight versions an online-training run saved (its versions= folder): "
        "each record is replayed with the version it names",
    )
    p.add_argument("--no-budgets", action="store_true", help="skip the conservation budgets")
    p.set_defaults(func=_replay)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="the coupling benchmark: Fortran, C, C++, Python and embedded-Python calls, "
        "on TorchScript, AOTInductor and the native engine",
    )
    p.add_argument("--quick", action="store_true", help="a short subset (CI): batches 1 and 256, one thread")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda:N")
    p.add_argument("--models", nargs="+", choices=["mlp32", "mlp64", "burgers"], help="default: all three")
    p.add_argument(
        "--batches",
        nargs="+",
        type=int,
        metavar="N",
        help="columns per call (default 1 4 16 64 256 4096 32768)",
    )
    p.add_argument("--threads", nargs="+", type=int, metavar="N", help="thread counts (default 1 2)")
    p.add_argument("--rounds", type=int, help="interleaved rounds per configuration (default 9)")
    p.add_argument("--keep", metavar="DIR", help="keep the exported models and driver logs in DIR")
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help="run the drivers with glibc's adaptive malloc thresholds (default: fixed ones, alike in all)",
    )
    p.add_argument(
        "--no-pt2", action="store_true", help="skip the AOTInductor (.pt2) routes and their compile"
    )
    p.add_argument("--no-native", action="store_true", help="skip the native-engine (.nnp) routes")
    p.add_argument(
        "--kernels",
        action="store_true",
        help="instead: the native kernels alone (no bridge) against the floor, one thread, with the "
        "fraction of the core's FMA peak and L2 read rate (default batches 1 4 16 64 256 4096, "
        "7 rounds; --models, --batches, --rounds, --json and --isa apply)",
    )
    p.add_argument(
        "--isa",
        nargs="+",
        choices=["auto", "scalar", "avx2", "avx512"],
        help="with --kernels: the native kernels to time, each in every round (default: auto, the widest "
        "this CPU runs)",
    )
    p.add_argument(
        "--pt2-cache",
        metavar="DIR",
        help="folder of compiled .pt2 packages, reused across runs (default: $PYCLOSURE_BENCH_CACHE, "
        "else ~/.cache/pyclosure/bench; '' to compile every time)",
    )
    p.add_argument(
        "--train-step",
        action="store_true",
        help="instead: the cost of an online training step, Fortran nn_train_step against pure Python "
        "(columns from --batches, default 16 256 4096; --rounds default 5)",
    )
    p.set_defaults(func=_bench)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pyclosure`` with ``argv`` (default: the process's); return the exit status."""
    args = build_parser().parse_args(argv)
    from .errors import ClosureError

    try:
        return args.func(args)
    except ClosureError as exc:
        print(f"pyclosure {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
