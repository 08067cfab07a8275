"""Plain function-preserving growth: default-initialised incoming weights, zero outgoing."""

from __future__ import annotations

from torch import Tensor

from clgrow.methods import RandomParams
from clgrow.methods.extender import Extender, GrowthContext
from clgrow.sites import Growable
from clgrow.surgery import default_init

__all__ = ["RandomExtender"]


class RandomExtender(Extender):
    """New units get ``nn.Linear``'s default init for ``W``/``b`` and zero columns in ``V``.

    The network's output is unchanged exactly; whether the new units ever fire is left
    to training (the baseline that SWE is compared against).
    """

    Params = RandomParams

    def _extend_layer(self, model: Growable, layer: int, k: int, ctx: GrowthContext) -> Tensor:
        inits = [default_init(k, r.fan_in) for r in model.members(layer)]  # a filter's init has the same law
        return model.add_units(layer, [w for w, _ in inits], [b for _, b in inits], None, cohort=ctx.cohort)
