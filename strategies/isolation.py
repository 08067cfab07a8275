r"""Units owned by the experience that recruited them: what may train, and keeping the rest still.

Every unit has an *owner*, the experience its cohort joined the model in (a growth step's cohort,
or a split made in advance). While experience ``e`` trains, an entry of a producer's weight
``W[j, i]`` may change only if its row's unit ``j`` is owned by ``e`` and the unit ``i`` it reads
already exists (owner ``<= e``); a unit's bias and batch-norm channel only if it is owned by ``e``;
a layer that is no site's producer (a head) keeps its rows trainable and reads only units that
exist. So a new experience trains its own units, which read every older one, while every older
unit computes exactly what it computed: its incoming row, its bias, its batch-norm parameters and
running statistics stay put, and it reads no newer unit (that column stays zero). Units owned by a
later experience are inert until then: zero reading weights, nothing trained.

:class:`Isolation` holds the masks for one experience and keeps them: a gradient hook on every
parameter zeroes what may not train (an optimizer's moments stay clean), and :meth:`restore` puts
frozen entries and old channels' running statistics back after each update (exact whatever the
optimizer carries: momentum, weight decay).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from avalanche.core import SupervisedPlugin
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from clgrow.errors import GrowthError
from clgrow.sites import Growable, as_growable, known_sites
from clgrow.surgery import Norm

__all__ = ["IsolationPlugin", "Isolation", "owners_of", "split_in_advance"]


def owners_of(model: Growable, owner: Mapping[int, int]) -> list[Tensor]:
    """Per site ``(n,)``: the experience owning each unit, from its cohort (``owner[cohort]``;
    cohort 0, the initial units, and any cohort ``owner`` does not name are owned by experience 0)."""
    out = []
    for i in range(model.num_hidden_layers):
        cohort = model.cohort(i).cpu()
        out.append(torch.tensor([max(0, owner.get(int(c), 0)) for c in cohort.tolist()], dtype=torch.long))
    return out


@torch.no_grad()
def split_in_advance(model: nn.Module, widths: Sequence[Sequence[int]]) -> None:
    """Split a fixed model's units among experiences before it trains (the baseline that isolates
    without growing): site ``s``'s units ``widths[e-1][s]:widths[e][s]`` join at experience ``e``
    (cohort ``e``), and every unit of a later experience starts inert (zero reading weights).

    Parameters
    ----------
    widths : sequence of per-site widths, one per experience (the last: the model's widths)
    """
    grown = as_growable(model)
    grown.prepare()
    for s in range(grown.num_hidden_layers):
        n = grown.hidden_sizes[s]
        if widths[-1][s] != n:
            raise GrowthError(f"split_in_advance: site {s} has {n} units, the split ends at {widths[-1][s]}")
        cohort = torch.zeros(n, dtype=torch.long)
        for e in range(1, len(widths)):
            cohort[widths[e - 1][s] : widths[e][s]] = e
        grown.set_cohort(s, cohort.to(grown.cohort(s).device))
        later = torch.nonzero(cohort > 0).flatten()
        for c in grown.consumers(s):
            c.view(n)[:, later.to(c.weight.device)] = 0.0


class Isolation:
    """The masks of what experience ``experience`` may train in ``model``, kept while it trains.

    Parameters
    ----------
    model : nn.Module
        A model with growth sites (its last trace serves).
    owner : mapping cohort -> experience
        The experience each growth cohort joined in (``GrowPlugin.cohort_experience``).
    experience : int
        The experience that trains now.
    """

    def __init__(self, model: nn.Module, owner: Mapping[int, int], experience: int) -> None:
        grown = as_growable(model)
        self.model, self.experience = model, int(experience)
        owners = owners_of(grown, owner)
        masks: dict[Tensor, Tensor] = {}

        def restrict(p: Tensor, mask: Tensor) -> None:
            masks[p] = masks[p] & mask if p in masks else mask

        self.stats: list[tuple[Norm, Tensor]] = []  # batch norms and their frozen channels
        for s, own in enumerate(owners):
            own = own.to(grown.members(s)[0].weight.device)
            mine, exists = own == self.experience, own <= self.experience
            for r in grown.members(s):
                restrict(r.weight, mine.view(-1, *[1] * (r.weight.dim() - 1)).expand_as(r.weight).clone())
                if r.producer.bias is not None:  # given at the first growth, not here
                    restrict(r.producer.bias, mine.clone())
            for norm in grown.norms(s):
                for p in (norm.weight, norm.bias):
                    if p is not None:
                        restrict(p, mine.clone())
                self.stats.append((norm, ~mine))
            n = grown.hidden_sizes[s]
            for c in grown.consumers(s):
                with torch.no_grad():  # a reader made since (a new task's head) reads no later unit either
                    c.view(n)[:, ~exists] = 0.0
                cols = torch.zeros_like(c.weight, dtype=torch.bool)
                view = cols.view(cols.shape[0], n, -1)
                view[:, exists] = True
                restrict(c.weight, cols)
        self.masks = masks
        self.saved = {p: p.detach().clone() for p in masks}
        self.running: list[tuple[Norm, Tensor, Tensor, Tensor]] = []
        for norm, frozen in self.stats:
            mean, var = norm.running_mean, norm.running_var
            if mean is not None and var is not None and bool(frozen.any()):
                self.running.append((norm, frozen, mean.clone(), var.clone()))
        self.handles: list[RemovableHandle] = [
            p.register_hook(lambda g, m=m: g * m) for p, m in masks.items() if p.requires_grad and not bool(m.all())
        ]

    @torch.no_grad()
    def restore(self) -> None:
        """Put every frozen entry and every old channel's running statistics back (after an update)."""
        for p, mask in self.masks.items():
            if not bool(mask.all()):
                p.copy_(torch.where(mask, p, self.saved[p]))
        for norm, frozen, mean, var in self.running:
            assert norm.running_mean is not None and norm.running_var is not None
            norm.running_mean[frozen] = mean[frozen]
            norm.running_var[frozen] = var[frozen]

    def remove(self) -> None:
        """Stop masking gradients."""
        for h in self.handles:
            h.remove()
        self.handles = []


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
