"""Import every built-in extender, distributor and plasticity method, so that their registries are complete.

Modules that look methods up by name (:mod:`clgrow.grow`, :mod:`clgrow.config`) import this;
``import clgrow`` itself stays light until a name is used.
"""

from clgrow import distributor, gradmax, net2net, plasticity, random_extender, svod, swe  # noqa: F401

__all__ = ["distributor", "gradmax", "net2net", "plasticity", "random_extender", "svod", "swe"]
