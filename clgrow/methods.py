"""Import every built-in extender, distributor and plasticity method, so that their registries are complete.

Modules that look methods up by name (:mod:`clgrow.grow`, :mod:`clgrow.config`) import this;
``import clgrow`` itself stays light until a name is used. The list of modules is
:data:`clgrow.catalog.METHOD_MODULES`, which the command line's catalog reads too.
"""

import importlib

from clgrow.catalog import METHOD_MODULES

for _module in METHOD_MODULES:
    importlib.import_module(_module)
