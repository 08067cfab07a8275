"""Plain function-preserving growth: default-initialised incoming weights, zero outgoing."""

from __future__ import annotations

from torch import Tensor

from clgrow.extender import Extender, GrowthContext
from clgrow.methods import RandomParams
from clgrow.model import GrowableMLP, default_linear_init

__all__ = ["RandomExtender"]


class RandomExtender(Extender):
    """New units get ``nn.Linear``'s default init for ``W``/``b`` and zero columns in ``V``.

    The network's output is unchanged exactly; whether the new units ever fire is left
    to training (the baseline that SWE is compared against).
    """

    Params = RandomParams

    def _extend_layer(self, model: GrowableMLP, layer: int, k: int, ctx: GrowthContext) -> Tensor:
        w, b = default_linear_init(k, model.fan_in(layer))  # a filter's init has the same law and draws
        return model.add_units(layer, w, b, None, cohort=ctx.cohort)
