"""The ``clgrow`` command: run, compare, plot, list.

Invalid arguments and configurations exit with code 2 and a message naming the problem.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from clgrow.experiments.console import quiet_avalanche_deprecations

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse already exits 2; keep its format
        self.print_usage(sys.stderr)
        self.exit(2, f"clgrow: error: {message}\n")


def _fail(message: str) -> int:
    print(f"clgrow: error: {message}", file=sys.stderr)
    return 2


def _command(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _take_imports(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` without its ``--import MODULE`` options (wherever they stand), and the modules."""
    rest, modules = [], []
    it = iter(argv)
    for a in it:
        if a == "--import":
            module = next(it, None)
            if module is None:
                raise _usage("--import: give a module name")
            modules.append(module)
        elif a.startswith("--import="):
            modules.append(a.split("=", 1)[1])
        else:
            rest.append(a)
    return rest, modules


def _usage(message: str) -> Exception:
    from clgrow.errors import ConfigError

    return ConfigError(message)


def _parser(full_run: bool = True) -> argparse.ArgumentParser:
    """The command line. ``full_run=False`` leaves out ``run``'s own arguments, so that the other
    commands, ``--help`` and their argument errors answer without building them (the method flags
    come from the methods' declarations, :mod:`clgrow.methods` and the registered ones; nothing
    here imports torch or Avalanche)."""
    p = _Parser(prog="clgrow", description="Grow networks during continual learning and compare forgetting.")
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first, so the methods and strategies it registers can be named (repeatable)",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="one benchmark x strategy x growth run")
    if not full_run:
        r.add_argument("rest", nargs=argparse.REMAINDER)
    else:
        _add_run_arguments(r)

    c = sub.add_parser("compare", help="run a grid from a TOML config, print a table, write figures")
    c.add_argument("config", help="the grid's TOML file (e.g. experiments/configs/quick.toml)")
    c.add_argument("--out", required=True, help="output directory: cells, table.md, figures (reruns resume)")
    c.add_argument("--backend", default="local", choices=["local", "ray"], help="run cells here or on Ray")
    c.add_argument("--workers", type=int, default=2, help="cells run at once (default: 2)")
    c.add_argument("--ray-address", default=None, help="a running Ray cluster's address (--backend ray)")
    c.add_argument("--data-root", default=None, help="directory holding on-disk data sets (overrides the grid's)")
    c.add_argument("--device", default=None, help="device of every cell (overrides the config's)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument("--check", action="store_true", help="validate the grid, list its cells, train nothing")
    c.add_argument(
        "--baseline",
        default=None,
        metavar="[STRATEGY/]GROWTH[/PLASTICITY]",
        help="compare every other row of its strategy with this row, paired by seed "
        "(e.g. fixed-final); overrides the grid's baseline key",
    )

    pl = sub.add_parser("plot", help="(re)draw the figures of a run or grid directory")
    pl.add_argument("dir", help="a run's or a grid's output directory")

    ls = sub.add_parser("list", help="benchmarks, strategies, extenders, distributors, growth presets")
    ls.add_argument("--verbose", "-v", action="store_true", help="every method's arguments: type, bounds, default")
    return p


def _add_run_arguments(r: argparse.ArgumentParser) -> None:
    from clgrow.experiments.catalog import BENCHMARK_NAMES
    from clgrow.experiments.config import PRUNE_CHOICES, PRUNE_SELECT, RunConfig
    from clgrow.registry import resetters, strategies
    from clgrow.strategies.declared import OPTIMIZERS

    d = RunConfig()
    r.add_argument(
        "--benchmark", default=d.benchmark, choices=list(BENCHMARK_NAMES), help=f"the stream (default: {d.benchmark})"
    )
    r.add_argument(
        "--strategy", default=d.strategy, choices=list(strategies), help=f"the CL strategy (default: {d.strategy})"
    )
    r.add_argument("--growth", default=d.growth, help="preset (clgrow list) or EXTENDER+DISTRIBUTOR")
    r.add_argument(
        "--plasticity",
        default=d.plasticity,
        choices=["none", *resetters],
        help="plasticity resets next to growth: ReDo or continual backprop (default: none)",
    )
    r.add_argument(
        "--prune",
        default=d.prune,
        choices=list(PRUNE_CHOICES),
        help="remove hidden units at each new experience, before growth: drop them, or swe (move what they "
        "contribute into the units that stay first)",
    )
    r.add_argument(
        "--prune-select",
        default=d.prune_select,
        choices=list(PRUNE_SELECT),
        help="which units --prune removes: dead, or tau-dormant (--prune-tau)",
    )
    r.add_argument("--prune-tau", type=float, default=d.prune_tau, help="dormancy threshold of --prune-select dormant")
    r.add_argument(
        "--match-final-size",
        action="store_true",
        help="train a fixed model at the final widths --growth reaches (fair fixed-size baseline)",
    )
    r.add_argument(
        "--match-final-compute",
        action="store_true",
        help="as --match-final-size, and train it for the multiply-adds the growth run spent in training and "
        "growth (more epochs; fair fixed-compute baseline)",
    )
    r.add_argument("--seed", type=int, default=d.seed, help="fixes everything on CPU (default: 0)")
    r.add_argument("--out", required=True, help="output directory")
    r.add_argument("--data-root", default=None, help="directory holding on-disk data sets")
    r.add_argument(
        "--experiences", type=int, default=d.n_experiences, dest="n_experiences", help="experiences in the stream"
    )
    r.add_argument("--class-order-seed", type=int, default=d.class_order_seed, help="seed of the classes' order")
    r.add_argument("--task-labels", action="store_true", help="task-incremental: task labels and one head per task")
    r.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=d.hidden_sizes,
        dest="hidden_sizes",
        help="hidden widths of the MLP, or of the linear layers after a CNN's convolutions",
    )
    r.add_argument(
        "--model",
        default=d.model,
        metavar="NAME",
        help="mlp, cnn (VGG-style, --channels) or resnet (ResNet-18, --nf, its blocks' inner channels grow), "
        "built by clgrow; or Avalanche's SimpleMLP, SimpleCNN, SlimResNet18 (MT... for task labels); or your "
        "own as package.module:factory (with --model-arg); conv models read the benchmark's images",
    )
    r.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="model_arg",
        help="a keyword argument of a model named by Avalanche name or import path (repeatable; VALUE "
        "as JSON if it parses, else a string)",
    )
    r.add_argument(
        "--channels",
        nargs="+",
        type=_channel,
        default=d.channels,
        metavar="C|M",
        help="the CNN's convolution widths, M after one for a 2x2 max-pool (default: 16 M 32 M)",
    )
    r.add_argument("--no-batch-norm", dest="batch_norm", action="store_false", help="no batch norm in the CNN")
    r.add_argument("--nf", type=int, default=d.nf, help="the ResNet's first width (default 20: SlimResNet18's)")
    r.add_argument(
        "--epochs",
        type=int,
        default=d.train_epochs,
        dest="train_epochs",
        help=f"per experience (default: {d.train_epochs})",
    )
    r.add_argument(
        "--batch-size",
        type=int,
        default=d.train_mb_size,
        dest="train_mb_size",
        help=f"training batch (default: {d.train_mb_size})",
    )
    r.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default: {d.lr})")
    r.add_argument("--optimizer", default=d.optimizer, choices=list(OPTIMIZERS), help=f"default: {d.optimizer}")
    r.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum (default: 0.9)")
    r.add_argument("--weight-decay", type=float, default=d.weight_decay, help="the optimizer's (default: 0)")
    r.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:i or mps (default: auto)")
    r.add_argument("--tau", type=float, default=d.tau, help=f"τ of τ-dormant units (default: {d.tau})")
    r.add_argument(
        "--reset-optimizer",
        action=argparse.BooleanOptionalAction,
        default=d.reset_optimizer,
        help="restart the optimizer's state at every experience, grown or fixed model alike (default: on; "
        "--no-reset-optimizer carries it, as Avalanche does)",
    )
    r.add_argument("--threads", type=int, default=d.threads, help="CPU threads of the run (default: torch's)")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="strategy hyperparameter, e.g. --set mem_size=200 (JSON values; clgrow list --verbose "
        "names each strategy's)",
    )
    r.add_argument(
        "--logger",
        action="append",
        dest="loggers",
        default=None,
        choices=["csv", "tensorboard", "wandb"],
        help="also log every metric to TensorBoard (OUT/tensorboard) or W&B (offline without network); "
        "repeatable; metrics.csv is always written",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bars or per-experience lines")
    r.add_argument("--check", action="store_true", help="validate everything, print the configuration, train nothing")
    _add_growth_flags(r)


_GROW = "grow."
_PLASTICITY = "plasticity"


def _channel(text: str) -> int | str:
    """One ``--channels`` entry: a width or ``M``."""
    if text.upper() == "M":
        return "M"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a channel width or M, got {text!r}") from None


def _add_growth_flags(p: argparse.ArgumentParser) -> None:
    """One flag per GrowthConfig setting and per extender/distributor/plasticity argument, read from
    their declarations (defaults stay there: an absent flag leaves the setting at its default)."""
    import dataclasses
    import typing

    from clgrow.config import GrowthConfig
    from clgrow.errors import ConfigError
    from clgrow.registry import REGISTRIES

    g = p.add_argument_group("growth settings (clgrow.GrowthConfig; the method is --growth)")
    types = GrowthConfig.setting_types()
    for f in dataclasses.fields(GrowthConfig):
        if f.name not in types:
            continue
        flags = ["--" + f.name.replace("_", "-"), *f.metadata.get("flags", ())]
        text = f.metadata.get("help", "")
        kw: dict[str, typing.Any] = dict(
            dest=_GROW + f.name,
            default=argparse.SUPPRESS,
            help=text if "default" in text else f"{text} (default: {f.default})",
        )
        args = typing.get_args(types[f.name]) or (types[f.name],)
        if bool in args:
            kw["action"] = argparse.BooleanOptionalAction
        elif any(typing.get_origin(a) is list for a in args):
            kw.update(type=int, nargs="+", metavar="N")
        else:
            kw.update(type=int, metavar="N")
        g.add_argument(*flags, **kw)
    taken = {a for action in p._actions for a in action.option_strings}
    for kind in ("extender", "distributor", _PLASTICITY):
        registry = REGISTRIES[kind]
        for name in registry:
            specs = registry.params(name).specs()
            if not specs:
                continue
            flag = "--plasticity" if kind == _PLASTICITY else "--growth"
            grp = p.add_argument_group(f"{kind} {name} arguments (used when {flag} names it)")
            for spec in specs.values():
                option = f"--{name}-{spec.name.replace('_', '-')}"
                if option in taken:  # a third-party method whose flag would shadow another's
                    raise ConfigError(
                        f"{kind} {name!r}: its argument {spec.name!r} makes the flag {option}, "
                        "which another setting already has; rename the method or the argument"
                    )
                taken.add(option)
                grp.add_argument(
                    option,
                    dest=f"{kind}.{name}.{spec.name}",
                    type=spec.parse,
                    default=argparse.SUPPRESS,
                    metavar=spec.type.__name__.upper(),
                    help=spec.describe().replace("%", "%%"),
                )


def _growth_settings(args: argparse.Namespace, growth: str) -> dict[str, Any]:
    """The GrowthConfig fields given on the command line; method arguments must fit ``growth``."""
    from clgrow.config import growth_methods
    from clgrow.errors import ConfigError
    from clgrow.experiments.config import FIXED

    given = vars(args)
    settings: dict[str, Any] = {k[len(_GROW) :]: v for k, v in given.items() if k.startswith(_GROW)}
    k = settings.get("neurons_per_experience")
    if isinstance(k, list) and len(k) == 1:  # one count is every step's; several, one per step
        settings["neurons_per_experience"] = k[0]
    if growth in FIXED:  # alone it has no reference run: it would train the initial widths under that label
        raise ConfigError(
            f"growth: {growth} is a grid entry; for one run use --growth METHOD --match-final-size "
            f"(or --match-final-compute)"
        )
    try:
        method = growth_methods(growth)
    except ConfigError as err:
        raise ConfigError(f"growth: {err}") from None
    for kind in ("extender", "distributor"):
        chosen = None if method is None else method[kind]
        kwargs = _method_kwargs(
            given,
            kind,
            chosen,
            kind,
            f"--growth {growth} uses {'no growth' if chosen is None else f'{kind} {chosen!r}'}",
        )
        if kwargs:
            settings[kind + "_kwargs"] = kwargs
    return settings


def _plasticity_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """The arguments of the plasticity method given on the command line; they must fit ``--plasticity``."""
    return _method_kwargs(
        vars(args), _PLASTICITY, args.plasticity, "plasticity method", f"--plasticity is {args.plasticity!r}"
    )


def _method_kwargs(given: dict[str, object], kind: str, chosen: str | None, label: str, but: str) -> dict[str, object]:
    """Arguments ``{kind}.{name}.{arg}`` given on the command line for method ``chosen``; an argument
    of another method is an error saying ``but`` (what was chosen instead)."""
    kwargs = {}
    for key, value in given.items():
        if not key.startswith(kind + "."):
            continue
        _, name, arg = key.split(".")
        if name != chosen:
            raise _usage(f"--{name}-{arg.replace('_', '-')} sets an argument of {label} {name!r}, but {but}")
        kwargs[arg] = value
    return kwargs


def _check_out(path: Path) -> None:
    """Refuse an output place that cannot take results, before anything trains."""
    try:
        if path.exists() and not path.is_dir():
            raise _usage(f"--out {path}: exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".clgrow-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise _usage(f"--out {path}: cannot write there ({err.strerror or err})") from None


def _check_out_name(text: str) -> None:
    """Refuse an empty ``--out`` (``Path("")`` is the current directory), even with ``--check``."""
    if not text.strip():
        raise _usage("--out: give a directory (got an empty path, which would write into the current directory)")


def _parse_sets(items: list[str], flag: str = "--set") -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        if "=" not in item:
            raise _usage(f"{flag} expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _cmd_run(args: argparse.Namespace) -> int:
    from clgrow.config import GrowthConfig
    from clgrow.experiments.config import RunConfig

    fields = {
        k: getattr(args, k)
        for k in (
            "benchmark",
            "strategy",
            "growth",
            "seed",
            "data_root",
            "n_experiences",
            "class_order_seed",
            "task_labels",
            "hidden_sizes",
            "model",
            "channels",
            "batch_norm",
            "nf",
            "train_epochs",
            "train_mb_size",
            "lr",
            "optimizer",
            "momentum",
            "weight_decay",
            "device",
            "tau",
            "reset_optimizer",
            "threads",
            "plasticity",
            "prune",
            "prune_select",
            "prune_tau",
        )
    }
    fields["imports"] = list(args.imports)
    fields["model_args"] = _parse_sets(args.model_arg, "--model-arg")
    fields["loggers"] = ["csv", *(n for n in args.loggers or [] if n != "csv")]
    fields["plasticity_kwargs"] = _plasticity_kwargs(args)
    fields["strategy_kwargs"] = _parse_sets(args.set)
    fields["grow"] = GrowthConfig(**_growth_settings(args, args.growth))
    _check_out_name(args.out)
    out = Path(args.out)
    verbose = not args.quiet
    matched = args.match_final_size or args.match_final_compute
    if matched and fields["growth"] == "none":
        return _fail("--match-final-size/--match-final-compute need --growth naming the growth run to match")
    # validated and built once here, at the edge: the run, or the reference run of --match-final-size
    cfg = RunConfig(**fields).resolve()
    from clgrow.experiments.catalog import SUGGESTED_EPOCHS

    suggested = SUGGESTED_EPOCHS.get(cfg.config.benchmark)
    if suggested and cfg.config.train_epochs < suggested and not args.quiet:
        print(
            f"clgrow: note: {cfg.config.benchmark} learns little at {cfg.config.train_epochs} epoch(s) per experience; "
            f"--epochs {suggested} learns it",
            file=sys.stderr,
        )
    fixed = None
    if matched:
        fixed = RunConfig(
            **{
                **fields,
                "match_final_size": fields["growth"],
                "growth": "none",
                "match_compute": bool(args.match_final_compute),
            }
        ).resolve()
    if args.check:
        print(json.dumps(cfg.config.to_dict(), indent=1))
        if cfg.config.model not in ("mlp", "cnn", "resnet"):  # what will grow, before anything trains
            print(f"{cfg.config.model}: {cfg.config.check_external_model().describe()}", file=sys.stderr)
        return 0
    _check_out(out)
    from clgrow.experiments.runner import run  # Avalanche: only once everything is valid

    if fixed is not None:
        print(f"reference run ({cfg.config.growth}) to find the final widths:", flush=True)
        ref = run(cfg, out / "reference", verbose=verbose, progress=verbose)
        print(f"fixed model at {ref.final_hidden_sizes}:", flush=True)
        summary = run(
            fixed,
            out,
            hidden_sizes=ref.final_hidden_sizes,
            compute_of=ref if args.match_final_compute else None,
            verbose=verbose,
            progress=verbose,
        )
        if args.match_final_compute:
            print(
                f"fixed model trained {summary.train_epochs} epoch(s) per experience to match the growth run's "
                "multiply-adds",
                flush=True,
            )
    else:
        summary = run(cfg, out, verbose=verbose, progress=verbose)
    print(
        f"final stream accuracy {summary.final_accuracy:.4f}, average forgetting "
        f"{summary.average_forgetting:.4f}, hidden sizes {summary.final_hidden_sizes}; wrote {out}"
    )
    if summary.collapsed:
        print(
            "clgrow: warning: the run collapsed (chance-level accuracy with every unit dead, or a training loss "
            "that never decreased); summary.json says so (collapsed: true)",
            file=sys.stderr,
        )
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    if not Path(args.config).is_file():
        return _fail(f"config file not found: {args.config}")
    from clgrow.experiments.config import load_grid

    grid = load_grid(args.config, imports=args.imports, data_root=args.data_root)
    if args.device is not None:
        grid.base.device = args.device
        grid.base.validate()
    if args.workers < 1:
        return _fail(f"--workers must be >= 1 (got {args.workers})")
    if args.baseline is not None:
        grid.baseline = args.baseline
        grid.check_baseline("--baseline")
    _check_out_name(args.out)
    out = Path(args.out)
    if args.check:
        for cell in grid.cells():
            resets = "" if cell.plasticity == "none" else f" / {cell.plasticity}"
            print(f"{cell.strategy} / {cell.growth_label}{resets} / seed {cell.seed}")
        return 0
    _check_out(out)
    from clgrow.experiments.grid import grid_lock, run_grid, write_outputs  # Avalanche: only once everything is valid

    with grid_lock(out):
        summaries = run_grid(
            grid, out, backend=args.backend, workers=args.workers, ray_address=args.ray_address, progress=not args.quiet
        )
        table = write_outputs(summaries, out, grid.baseline)
    print(
        f"\n{grid.base.benchmark}, {len(grid.seeds)} seed(s); fractions in % (mean ± half-width of the 95 % interval over seeds, Student's t)\n"
    )
    print(table)
    print(f"\nwrote {out / 'summary.csv'}, {out / 'table.csv'}, {out / 'table.md'} and {out / 'figures'}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    if not (d / "summary.json").is_file() and not (d / "cells").is_dir():
        return _fail(f"{d} is neither a run directory (summary.json) nor a grid directory (cells/)")
    _check_out(d / "figures")  # a read-only directory is named before anything is drawn
    from clgrow.experiments.grid import grid_baseline, load_cells, write_outputs
    from clgrow.experiments.plots import plot_run

    if (d / "summary.json").is_file():
        from clgrow.strategies.summary import RunSummary

        f = d / "summary.json"
        paths = plot_run(RunSummary.from_dict(json.loads(f.read_text()), where=str(f)), d / "figures")
    else:
        cells, left_out = load_cells(d)
        if left_out:
            print(
                f"clgrow: warning: left out {len(left_out)} cell(s) that are not finished cells of the grid in "
                f"{d / 'grid.json'}: {', '.join(left_out)}",
                file=sys.stderr,
            )
        if not cells:
            return _fail(f"{d / 'cells'} holds no finished cell of its grid")
        write_outputs(cells, d, grid_baseline(d))
        paths = sorted((d / "figures").glob("*.png"))
    for p in paths:
        print(p)
    return 0


def _cmd_list(verbose: bool) -> int:
    from clgrow.config import GROWTH_PRESETS
    from clgrow.experiments.catalog import BENCHMARK_NAMES, EMBEDDED_BENCHMARKS
    from clgrow.registry import REGISTRIES

    print("benchmarks (embedded):", ", ".join(EMBEDDED_BENCHMARKS))
    print("benchmarks (on disk, --data-root):", ", ".join(b for b in BENCHMARK_NAMES if b not in EMBEDDED_BENCHMARKS))
    for kind, title in (
        ("strategy", "strategies"),
        ("extender", "extenders"),
        ("distributor", "distributors"),
        ("plasticity", "plasticity"),
    ):
        registry = REGISTRIES[kind]
        print(f"{title}:", ", ".join(["none", *registry] if kind == "plasticity" else registry))
        if verbose:
            for name in registry:
                declared = registry.params(name)
                doc = (declared.__doc__ or "").strip().splitlines()
                print(f"  {name}: {doc[0] if doc and not doc[0].startswith(declared.__name__ + '(') else ''}")
                for spec in declared.specs().values():
                    print(f"      {spec.name}: {spec.describe()}")
    print("growth presets:", ", ".join(GROWTH_PRESETS), "(or EXTENDER+DISTRIBUTOR; fixed-final in grids)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clgrow`` command; returns the exit code."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*QP solver.*")
    quiet_avalanche_deprecations()
    argv = list(sys.argv[1:] if argv is None else argv)
    from clgrow.errors import ConfigError, GrowthError
    from clgrow.experiments.catalog import DataMissingError
    from clgrow.experiments.errors import RunDiverged
    from clgrow.registry import import_modules

    try:  # a user's modules register their methods before the parser makes their flags
        argv, imports = _take_imports(argv)
        import_modules(imports, where="--import")
        args = _parser(full_run=_command(argv) == "run").parse_args(argv)
    except ConfigError as err:
        return _fail(str(err))
    args.imports = imports

    import signal

    ending: list[bool] = []

    def terminated(signum: int, frame: object) -> None:
        # one path for Ctrl-C and SIGTERM: workers end, finished cells stay. Once ending, a
        # repeated SIGTERM (a supervisor's second try) is ignored, so the exit stays 130.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ending.append(True)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, terminated)
    except ValueError:  # not the main thread (an embedding program): its own handlers stay
        previous = None
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "plot":
            return _cmd_plot(args)
        return _cmd_list(args.verbose)
    except (ConfigError, DataMissingError) as err:  # bad input: the settings or the data's place
        return _fail(str(err))
    except RunDiverged as err:
        print(f"clgrow: diverged: {err}", file=sys.stderr)
        return 1
    except GrowthError as err:  # a growth step refused while training: the run failed, the input was valid
        print(f"clgrow: run failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        resume = (
            "run the same command again to resume: finished cells are kept"
            if args.command == "compare"
            else "no summary.json was written; run it again to start over"
        )
        print(f"\nclgrow: interrupted; {resume}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `clgrow list | head -1`: the reader left, nothing is wrong
        import os

        try:  # so the interpreter's final flush of stdout does not raise again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except OSError as err:  # a full disk, a file removed underneath: the run failed, no traceback
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(
            f"clgrow: error: {err.strerror or err}{where}; finished results are kept, rerun to complete",
            file=sys.stderr,
        )
        return 1
    finally:
        if previous is not None and not ending:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
