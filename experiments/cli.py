"""The ``clgrow`` command: run, compare, plot, list.

Invalid arguments and configurations exit with code 2 and a message naming the problem.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from clgrow.experiments.console import quiet_avalanche_deprecations

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse already exits 2; keep its format
        self.print_usage(sys.stderr)
        self.exit(2, f"clgrow: error: {message}\n")


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
    ls.add_argument("--markdown", action="store_true", help="every run setting and flag as docs/cli.md's reference")
    return p


def _add_run_arguments(r: argparse.ArgumentParser) -> None:
    """``clgrow run``'s flags: one per declared run setting (:mod:`clgrow.strategies.settings`),
    one per growth setting and method argument, and the few that set a table or a pair of fields."""
    from clgrow.experiments.config import RunConfig
    from clgrow.experiments.loggers import LOGGERS
    from clgrow.strategies.settings import add_flags

    r.add_argument("--out", required=True, help="output directory")
    r.add_argument("--quiet", action="store_true", help="no progress bars or per-experience lines")
    r.add_argument(
        "--check", action="store_true", help="resolve the run as it would be resolved, print it, train nothing"
    )
    add_flags(r, RunConfig)
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
        choices=list(LOGGERS),
        help="also log every metric to TensorBoard (OUT/tensorboard) or W&B (offline without network); "
        "repeatable; metrics.csv is always written",
    )
    _add_growth_flags(r)


_GROW = "grow."
_PLASTICITY = "plasticity"


def _add_growth_flags(p: argparse.ArgumentParser) -> None:
    """One flag per GrowthConfig setting and per extender/distributor/plasticity argument, read from
    their declarations (defaults stay there: an absent flag leaves the setting at its default)."""
    from clgrow.errors import ConfigError
    from clgrow.registry import REGISTRIES
    from clgrow.strategies.schedule import GrowthConfig
    from clgrow.strategies.settings import add_flags

    add_flags(
        p, GrowthConfig, prefix=_GROW, title="{} settings (clgrow.strategies.GrowthConfig; the method is --growth)"
    )
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
                    type=flag_value(spec),
                    default=argparse.SUPPRESS,
                    metavar=spec.type.__name__.upper(),
                    help=spec.describe().replace("%", "%%"),
                )


def flag_value(spec: Any) -> Any:
    """How a method argument's flag reads its text (``spec``: a :class:`clgrow.params.Spec`); the
    value's constraints are checked when the method is built."""

    def parse(text: str) -> Any:
        if spec.optional and text.lower() in ("none", "null"):
            return None
        if spec.type is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"expected true or false, got {text!r}")
            return text.lower() in ("true", "1")
        value = spec.type(text)
        if spec.type is float and not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {text!r}")
        return value

    parse.__name__ = spec.type.__name__  # argparse names it in "invalid float value: 'x'"
    return parse


def _growth_settings(args: argparse.Namespace, growth: str) -> dict[str, Any]:
    """The GrowthConfig fields given on the command line; method arguments must fit ``growth``."""
    from clgrow.errors import ConfigError
    from clgrow.strategies.schedule import growth_methods
    from clgrow.strategies.settings import read_flags

    given = vars(args)
    settings = read_flags(args, _GROW)
    k = settings.get("neurons_per_experience")
    if isinstance(k, list) and len(k) == 1:  # one count is every step's; several, one per step
        settings["neurons_per_experience"] = k[0]
    from clgrow.experiments.config import FIXED

    if growth in FIXED:
        return settings  # refused by the growth section's rule, naming the grid entry
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


def _plasticity_kwargs(args: argparse.Namespace, chosen: str) -> dict[str, object]:
    """The arguments of the plasticity method given on the command line; they must fit ``--plasticity``."""
    return _method_kwargs(vars(args), _PLASTICITY, chosen, "plasticity method", f"--plasticity is {chosen!r}")


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


def run_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The RunConfig fields a ``clgrow run`` command line gives (an absent flag leaves its field
    at the declared default)."""
    from clgrow.experiments.config import RunConfig
    from clgrow.strategies.schedule import GrowthConfig
    from clgrow.strategies.settings import read_flags

    fields = read_flags(args)
    declared = RunConfig.settings()
    growth = fields.get("growth", declared["growth"].default)
    plasticity = fields.get("plasticity", declared["plasticity"].default)
    fields["imports"] = list(args.imports)
    fields["model_args"] = _parse_sets(args.model_arg, "--model-arg")
    if args.loggers:
        fields["loggers"] = ["csv", *(n for n in args.loggers if n != "csv")]
    fields["plasticity_kwargs"] = _plasticity_kwargs(args, plasticity)
    fields["strategy_kwargs"] = _parse_sets(args.set)
    fields["grow"] = GrowthConfig(**_growth_settings(args, growth))
    return fields


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clgrow`` command; returns the exit code."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*QP solver.*")
    quiet_avalanche_deprecations()
    argv = list(sys.argv[1:] if argv is None else argv)
    from clgrow.errors import ConfigError, GrowthError
    from clgrow.experiments import commands
    from clgrow.experiments.catalog import DataMissingError
    from clgrow.experiments.errors import CellFailed, RunDiverged
    from clgrow.experiments.imports import import_modules

    try:  # a user's modules register their methods before the parser makes their flags
        argv, imports = _take_imports(argv)
        import_modules(imports, where="--import")
        args = _parser(full_run=_command(argv) == "run").parse_args(argv)
    except ConfigError as err:
        return commands.fail(str(err))
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
            return commands.run_command(args, run_fields(args))
        if args.command == "compare":
            return commands.compare_command(args)
        if args.command == "plot":
            return commands.plot_command(args)
        return commands.list_command(args.verbose, args.markdown)
    except (ConfigError, DataMissingError) as err:  # bad input: the settings or the data's place
        return commands.fail(str(err))
    except RunDiverged as err:
        print(f"clgrow: diverged: {err}", file=sys.stderr)
        return 1
    except CellFailed as err:  # the grid stops; finished cells are kept and a rerun resumes
        print(f"clgrow: run failed: {err}; finished cells are kept, rerun to resume", file=sys.stderr)
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
