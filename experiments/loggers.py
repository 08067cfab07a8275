"""Where a run's metrics go besides ``metrics.csv``: Avalanche's TensorBoard and W&B loggers.

Every metric clgrow emits reaches every logger under its Avalanche name (``NeuronDormant/
eval_phase/test_stream/layer0``, ``GrowthAllocation/train_phase/train_stream/layer1``...), since the
loggers are handed to the same evaluation plugin as the CSV writer. A grid's cells write each to
their own directory and carry the grid's name as their W&B group.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

from clgrow.errors import ConfigError

__all__ = ["LOGGERS", "check_loggers", "make_loggers", "close_loggers", "wandb_reachable"]

#: Logger names a run can give (``csv``: ``metrics.csv``/``metrics.json``, always written).
LOGGERS = ("csv", "tensorboard", "wandb")


def check_loggers(names: Any, where: str = "loggers") -> None:
    """Refuse unknown logger names, or one whose package is not installed (no import happens)."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where}: must be a list of logger names from {', '.join(LOGGERS)} (got {names!r})")
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(f"{where}: unknown logger {name!r}; known: {', '.join(LOGGERS)}")
    if "wandb" in names and importlib.util.find_spec("wandb") is None:
        raise ConfigError(
            f"{where}: the wandb logger needs the wandb package (Avalanche's dependency): pip install wandb"
        )
    if "tensorboard" in names and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(f"{where}: the tensorboard logger needs the tensorboard package: pip install tensorboard")
    if "wandb" in names:
        _check_wandb(where)


#: What W&B accepts in ``WANDB_MODE``; the ones that log to its server need an API key.
WANDB_MODES = ("online", "offline", "shared", "disabled", "dryrun", "run")
_WANDB_ONLINE = ("online", "shared", "run")


def _check_wandb(where: str) -> None:
    """Refuse a W&B logger that could not start: a ``WANDB_MODE`` W&B rejects, or logging online
    (the mode says so, or the server answers with the mode unset) without an API key."""
    mode = os.environ.get("WANDB_MODE")
    if mode is not None and mode not in WANDB_MODES:
        raise ConfigError(f"{where}: WANDB_MODE={mode!r} is not one of {', '.join(WANDB_MODES)} (W&B would refuse it)")
    online = mode in _WANDB_ONLINE or (mode is None and wandb_reachable())
    if online and not _wandb_key():
        raise ConfigError(
            f"{where}: the wandb logger would log online ({'WANDB_MODE=' + mode if mode else 'its server answers'}) "
            "but no W&B API key is configured: run `wandb login`, set WANDB_API_KEY, or WANDB_MODE=offline"
        )


def _wandb_key() -> bool:
    """Whether a W&B API key is configured (the environment, or ~/.netrc as ``wandb login`` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc

    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_reachable(timeout: float = 2.0) -> bool:
    """Whether W&B's server answers (a run logs online only then)."""
    try:
        socket.create_connection(("api.wandb.ai", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def make_loggers(names: list[str], out: Path | None, run_name: str, config: dict[str, Any]) -> list[Any]:
    """Avalanche loggers for ``names`` (``csv`` is the caller's own writer), writing under ``out``.

    A run inside a grid (``out`` is ``GRID/cells/CELL``) takes the grid directory's name as its W&B
    group. W&B logs offline, and says so, when ``WANDB_MODE`` is unset and its server cannot be
    reached.
    """
    loggers: list[Any] = []
    if out is None:
        if any(n != "csv" for n in names):
            print(
                "clgrow: warning: no output directory: the tensorboard and wandb loggers are left out", file=sys.stderr
            )
        return loggers
    if "tensorboard" in names:
        from avalanche.logging import TensorboardLogger

        loggers.append(TensorboardLogger(tb_log_dir=out / "tensorboard"))
    if "wandb" in names:
        mode = os.environ.get("WANDB_MODE")
        if mode is None and not wandb_reachable():
            mode = "offline"
            print(
                f"clgrow: W&B's server cannot be reached: logging offline under {out / 'wandb'} "
                "(upload later with `wandb sync`)",
                file=sys.stderr,
            )
        group = out.parent.parent.name if out.parent.name == "cells" else None
        # an id of our own: Avalanche 0.6 draws one with wandb.util.generate_id, gone from recent wandb
        params: dict[str, Any] = {"group": group, "reinit": "finish_previous", "id": uuid.uuid4().hex[:12]}
        if mode is not None:
            params["mode"] = mode
        loggers.append(
            _scalar_wandb()(
                project_name="clgrow", run_name=run_name, dir=out, save_code=False, config=config, params=params
            )
        )
    return loggers


def _scalar_wandb() -> type:
    """Avalanche's ``WandBLogger`` logging scalars itself: Avalanche 0.6 reaches for
    ``wandb.viz.CustomChart`` on every value, which recent wandb releases no longer have, and
    every metric clgrow emits is a number."""
    import torch
    from avalanche.logging import WandBLogger

    class ScalarWandBLogger(WandBLogger):
        def log_single_metric(self, name: str, value: Any, x_plot: int) -> None:
            self.step = x_plot
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.wandb.log({name: float(value)}, step=self.step)

    return ScalarWandBLogger


def close_loggers(loggers: list[Any]) -> None:
    """Flush and close what the loggers hold open (event files, the W&B run)."""
    for logger in loggers:
        writer = getattr(logger, "writer", None)
        if writer is not None and hasattr(writer, "close"):
            writer.close()
        run = getattr(getattr(logger, "wandb", None), "run", None)
        if run is not None:
            run.finish()
