"""IsolationPlugin: every unit owned by the experience that recruited it (:mod:`clgrow.methods.isolation`)."""

from __future__ import annotations

from typing import Any, ClassVar

from avalanche.core import SupervisedPlugin

from clgrow.methods.isolation import Isolation, split_in_advance
from clgrow.sites import known_sites

__all__ = ["IsolationPlugin"]


class IsolationPlugin(SupervisedPlugin):
    """While an experience trains, only the units it owns (and the heads) learn; older units keep
    computing what they computed, and units of later experiences stay inert.

    Owners come from the strategy's :class:`~clgrow.strategies.GrowPlugin` (the experience each
    growth cohort joined in), or, for a fixed model, from ``split``: the sites' widths at every
    experience, the units a later experience owns given to it before anything trains. A
    ``GrowPlugin`` whose ``isolation`` setting is ``"freeze"`` runs one of its own.

    Parameters
    ----------
    split : list of per-site widths, one per experience, optional
        Split a fixed model's units in advance (the baseline that isolates without growing).
    """

    #: After growth (50): the experience's masks cover the units it just gained.
    plugin_order: ClassVar[int] = 60

    def __init__(self, split: list[list[int]] | None = None) -> None:
        super().__init__()
        self.split = split
        self.owners: dict[int, int] | None = None  # cohort -> experience (None: a GrowPlugin's)
        self._iso: Isolation | None = None

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """A fixed model's split, made once, before its first experience."""
        if self.split is not None and self.owners is None:
            split_in_advance(strategy.model, self.split)
            self.owners = {e: e for e in range(len(self.split))}

    def before_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """The masks of this experience, on the model as it is now (grown, pruned)."""
        self.start(strategy)

    def start(self, strategy: Any, owners: dict[int, int] | None = None) -> None:
        """Mask what the current experience may not train (``owners``: cohort -> experience)."""
        self.stop()
        owners = owners if owners is not None else self.owners
        if owners is None or known_sites(strategy.model) is None:
            return
        self._iso = Isolation(strategy.model, owners, int(strategy.clock.train_exp_counter))

    def after_update(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Frozen entries and old channels' running statistics back where they were."""
        if self._iso is not None:
            self._iso.restore()

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop masking (the masks belong to one experience and one set of tensors)."""
        if self._iso is not None:
            self._iso.remove()
            self._iso = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_iso"] = None  # hooks and masks are rebuilt at the next epoch (checkpoints)
        return state
