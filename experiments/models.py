"""Models a run can use besides clgrow's own: Avalanche's by name, anyone's by import path.

``--model SimpleMLP`` (or ``SimpleCNN``, ``SlimResNet18`` and their ``MT`` multi-task versions)
builds Avalanche's model for the benchmark; ``--model package.module:factory`` calls the user's
factory (the working directory is importable, as for ``python -m``), with ``--model-arg key=value``
as keyword arguments. A factory that takes ``num_classes`` (or ``nclasses``) and ``input_size``
(or ``in_features``) gets the benchmark's unless given. Either way the model's growth sites are
traced before training: a model with none is refused with the list of its layers and why.
"""

from __future__ import annotations

import inspect
import math
import re
import sys
from collections.abc import Callable
from typing import Any

from clgrow.errors import ConfigError
from clgrow.experiments.imports import import_modules

__all__ = [
    "AVALANCHE_MODELS",
    "is_external",
    "check_model_name",
    "own_model",
    "load_model",
    "trace_model",
    "activation_bytes",
]

#: Avalanche's models a run names directly, and the arguments each takes from the benchmark
#: (``classes``: its head size, ``inputs``: its flattened input size).
AVALANCHE_MODELS: dict[str, dict[str, str]] = {
    "SimpleMLP": {"num_classes": "classes", "input_size": "inputs"},
    "MTSimpleMLP": {"input_size": "inputs"},
    "SimpleCNN": {"num_classes": "classes"},
    "MTSimpleCNN": {},
    "SlimResNet18": {"nclasses": "classes"},
    "MTSlimResNet18": {"nclasses": "classes"},
}
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_external(name: object) -> bool:
    """Whether ``name`` names a model clgrow does not build (Avalanche's or an import path)."""
    return isinstance(name, str) and (name in AVALANCHE_MODELS or ":" in name)


def check_model_name(name: str) -> str | None:
    """``None`` if ``name`` is an Avalanche model or a well-formed import path, else why not."""
    if name in AVALANCHE_MODELS or _IMPORT_PATH.match(name):
        return None
    return (
        f"must be mlp, cnn or resnet, one of Avalanche's models ({', '.join(AVALANCHE_MODELS)}), "
        f"or an import path package.module:factory; got {name!r}"
    )


def own_model(
    cfg: Any,
    sizes: list[int],
    classes: int,
    inputs: int,
    shape: tuple[int, ...] | None,
    backbone: Any = None,
    task_heads: bool = False,
) -> Any:
    """The model clgrow builds for a run (``cfg.model``: mlp, cnn or resnet), its sites at ``sizes``
    (site order), ``classes`` outputs per head, with one head per task (Avalanche's
    ``MultiHeadClassifier``) when ``task_heads``. ``shape``: a sample's image shape ``(C, H, W)``
    (an MLP with a ``backbone`` reads images; a CNN or ResNet needs one)."""
    import torch

    from clgrow.models import cnn, mlp, resnet

    head = None if task_heads else classes
    model: torch.nn.Module
    if cfg.model == "resnet":
        assert shape is not None
        model = resnet(shape, head, nf=cfg.nf, widths=sizes)
        example = torch.zeros(2, *shape)
    elif cfg.model == "cnn":
        assert shape is not None
        widths = iter(sizes)
        spec = [c if c == "M" else next(widths) for c in cfg.channels]
        model = cnn(shape, spec, list(widths), head, batch_norm=cfg.batch_norm)
        example = torch.zeros(2, *shape)
    else:
        example = torch.zeros(2, *shape) if backbone is not None and shape is not None else torch.zeros(2, inputs)
        model = mlp(inputs, sizes, head, backbone=backbone, example=example if head is not None else None)
    if not task_heads:
        return model
    from clgrow.strategies.multihead import with_task_heads

    return with_task_heads(model, classes, example)


def _factory(name: str) -> Callable[..., Any]:
    if name in AVALANCHE_MODELS:
        import avalanche.models

        return getattr(avalanche.models, name)
    module_name, attr = name.split(":", 1)
    import_modules([module_name], where="model")  # as --import: the working directory is importable
    obj: Any = sys.modules[module_name]
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"model: {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"model: {name} is not callable (a class or a function building the model)")
    return obj


def load_model(name: str, args: dict[str, Any], classes: int, inputs: int) -> Any:
    """Build the named model for a benchmark with ``classes`` outputs per head and ``inputs``
    input values per sample; refuse (naming the model) what cannot be built."""
    import torch

    factory = _factory(name)
    kwargs = dict(args)
    given = {"classes": classes, "inputs": inputs}
    if name in AVALANCHE_MODELS:
        for arg, what in AVALANCHE_MODELS[name].items():
            kwargs.setdefault(arg, given[what])
    else:
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        for options, value in ((("num_classes", "nclasses"), classes), (("input_size", "in_features"), inputs)):
            if not any(o in kwargs for o in options):
                for o in options:
                    if o in params:
                        kwargs[o] = value
                        break
    try:
        model = factory(**kwargs)
    except Exception as err:  # whatever the factory raises is the model's to fix: name it and the call
        raise ConfigError(
            f"model: {name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) failed: {type(err).__name__}: {err}"
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model: {name} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def trace_model(model: Any, shape: tuple[int, ...], name: str, task_labels: bool) -> Any:
    """The model's growth sites (``SiteMap``) on a batch of two zero inputs of ``shape``, on the
    device the model's parameters are on (``meta`` for a check: nothing is computed)."""
    import torch

    from clgrow.discovery import find_sites

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros(2, *shape, device=device)
    try:
        return find_sites(model, x, 0 if task_labels or hasattr(model, "forward_single_task") else None)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise ConfigError(
            f"model: {name} does not run on this benchmark's inputs of shape {tuple(shape)} "
            f"({type(err).__name__}: {str(err).splitlines()[0]})"
        ) from None


def activation_bytes(model: Any, shape: tuple[int, ...], task_labels: bool, device: str = "cpu") -> int:
    """Bytes one sample's forward pass keeps for the backward pass: every tensor the model's
    forward produces, as its own trace records them (on the ``meta`` device nothing is computed)."""
    import torch

    from clgrow.discovery import _Tracer, call_model

    tracer = _Tracer(model)
    try:
        with torch.no_grad(), tracer:
            call_model(model, torch.zeros(2, *shape, device=device), 0 if task_labels else None)
    finally:
        tracer.close()
    return sum(math.prod(t.shape[1:]) * t.element_size() for node in tracer.nodes for t in node.outputs)
