"""A ReLU multilayer perceptron whose hidden layers can grow in place.

Shapes follow the design notes: hidden layer ``l`` holds ``W`` of shape ``(n, m)``
(``n`` units, ``m`` inputs) and ``b`` of shape ``(n,)``; its *consumer* is the next
hidden layer or the head, whose weight ``V`` has shape ``(p, n)``.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from clgrow import compute
from clgrow.channels import ChannelConsumer
from clgrow.errors import GrowthError

__all__ = ["GrowableMLP", "ModelSnapshot", "unit_view", "unit_columns", "snapshot_module", "restore_module"]


def unit_view(weight: Tensor, n: int) -> Tensor:
    """A consumer's weight seen per input unit: ``(p, n, r)``, a view sharing its storage.

    ``r`` is what one unit (or channel) of the producer owns in the consumer: 1 column of a
    ``Linear`` (or of one after global average pooling), the ``H·W`` columns of a ``Linear``
    after channel-major ``Flatten``, the ``kh·kw`` kernel of a ``Conv2d``. Writing to the view
    writes the consumer's weight, so every method handles all consumer kinds with one indexing.
    """
    return weight.view(weight.shape[0], n, -1)


def outgoing_norm(consumers: Sequence[nn.Linear | nn.Conv2d], n: int, p: int = 1) -> Tensor:
    """Per unit of an ``n``-unit producer ``(n,)``, the ``p``-norm over every consumer of its
    outgoing slices (``p=1``: the sum of magnitudes, continual backprop's ``Σ|w_out|``), detached."""
    total = sum(unit_view(c.weight.detach(), n).abs().pow(p).sum((0, 2)) for c in consumers)
    assert isinstance(total, Tensor)
    return total if p == 1 else total.pow(1 / p)


def unit_columns(units: Tensor, n: int, width: int) -> Tensor:
    """The input columns of a consumer ``width`` wide that ``units`` of an ``n``-unit producer own
    (``width // n`` consecutive ones each: one for a unit or a kernel's input channel, a flattened
    channel's ``H·W``); what indexing dimension 1 of a consumer's weight by units means."""
    r = width // n
    if r == 1:
        return units
    return (units[:, None] * r + torch.arange(r, device=units.device)).flatten()


def _whole(v: object, least: int = 1) -> bool:
    """An integer (numpy's included) ``>= least``: never a bool, str or float."""
    return not isinstance(v, bool) and hasattr(v, "__index__") and int(v) >= least


def default_linear_init(out_features: int, in_features: int) -> tuple[Tensor, Tensor]:
    """Weights and bias as ``nn.Linear`` initialises them (uniform in ``±1/sqrt(in_features)``).

    Returns
    -------
    weight : Tensor, shape ``(out_features, in_features)``
    bias : Tensor, shape ``(out_features,)``
    """
    bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
    weight = torch.empty(out_features, in_features).uniform_(-bound, bound)
    bias = torch.empty(out_features).uniform_(-bound, bound)
    return weight, bias


def _per_consumer(
    out_weight: Tensor | Sequence[Tensor | None] | None, consumers: Sequence[nn.Module], layer: int
) -> list[Tensor | None]:
    """``add_units``'s outgoing weights as one entry per consumer (``None``: zeros)."""
    outs = [out_weight] * len(consumers) if out_weight is None or isinstance(out_weight, Tensor) else list(out_weight)
    if len(outs) != len(consumers):
        raise GrowthError(f"layer {layer} has {len(consumers)} consumers, got {len(outs)} outgoing weights")
    return outs


def _replace_linear(lin: nn.Linear, weight: Tensor, bias: Tensor | None) -> None:
    """Give ``lin`` new parameters of a new shape, keeping ``requires_grad`` flags."""
    lin.weight = nn.Parameter(weight.detach().clone(), requires_grad=lin.weight.requires_grad)
    if bias is not None and lin.bias is not None:
        lin.bias = nn.Parameter(bias.detach().clone(), requires_grad=lin.bias.requires_grad)
    lin.out_features, lin.in_features = weight.shape


@dataclass
class ModelSnapshot:
    """Everything needed to put a model back exactly as it was before a growth step.

    Parameter and buffer *objects* are kept (not only their values), so an optimizer
    holding references to them still points at the model's tensors after a restore.
    """

    params: list[tuple[nn.Module, str, nn.Parameter | None, Tensor | None, Tensor | None]] = field(default_factory=list)
    buffers: list[tuple[nn.Module, str, Tensor | None, Tensor | None]] = field(default_factory=list)
    shapes: list[tuple[nn.Module, dict[str, int]]] = field(default_factory=list)
    training: dict[nn.Module, bool] = field(default_factory=dict)


#: Shape attributes growth changes (of layers, norms, and containers that build heads from them),
#: restored with the tensors.
_SHAPE_ATTRS = ("in_features", "out_features", "in_channels", "out_channels", "num_features")


def snapshot_module(module: nn.Module) -> ModelSnapshot:
    """Record ``module`` so that :func:`restore_module` undoes any growth, bit for bit: parameter
    and buffer objects with their values and gradients, shape attributes, train/eval flags."""
    snap = ModelSnapshot()
    for mod in module.modules():
        snap.training[mod] = mod.training
        for name, p in mod._parameters.items():
            snap.params.append(
                (
                    mod,
                    name,
                    p,
                    None if p is None else p.detach().clone(),
                    None if p is None or p.grad is None else p.grad.detach().clone(),
                )
            )
        for name, b in mod._buffers.items():
            snap.buffers.append((mod, name, b, None if b is None else b.detach().clone()))
        attrs = {a: getattr(mod, a) for a in _SHAPE_ATTRS if isinstance(getattr(mod, a, None), int)}
        if attrs:
            snap.shapes.append((mod, attrs))
    return snap


@torch.no_grad()
def restore_module(snap: ModelSnapshot) -> None:
    """Put back what :func:`snapshot_module` recorded (parameters and buffers a failed step added
    are dropped: the recorded dictionaries are restored whole)."""
    for mod in snap.training:
        added = set(mod._parameters) - {name for m, name, *_ in snap.params if m is mod}
        for name in added:
            del mod._parameters[name]
        added = set(mod._buffers) - {name for m, name, *_ in snap.buffers if m is mod}
        for name in added:
            del mod._buffers[name]
    for mod, name, p, value, grad in snap.params:
        if p is not None and value is not None:
            p.data = value
            p.grad = grad
        mod._parameters[name] = p
    for mod, name, b, value in snap.buffers:
        if b is not None and value is not None:
            b.data = value
        mod._buffers[name] = b
    for mod, attrs in snap.shapes:
        for attr, size in attrs.items():
            setattr(mod, attr, size)
    for mod, training in snap.training.items():
        mod.training = training


class LinearDict(nn.ModuleDict):
    """Task heads by name: a ``ModuleDict`` whose items are typed as ``nn.Linear``."""

    def __getitem__(self, key: str) -> nn.Linear:
        return super().__getitem__(key)  # type: ignore[return-value]

    def values(self) -> Iterable[nn.Linear]:  # type: ignore[override]
        return super().values()  # type: ignore[return-value]


class Linears(nn.ModuleList):
    """The hidden layers: a ``ModuleList`` whose items are typed as ``nn.Linear``."""

    def __getitem__(self, idx: int) -> nn.Linear:  # type: ignore[override]
        return super().__getitem__(idx)  # type: ignore[return-value]

    def __iter__(self) -> Iterator[nn.Linear]:
        return super().__iter__()  # type: ignore[return-value]


class GrowableMLP(nn.Module):
    """ReLU MLP (optionally on top of a backbone) whose hidden layers grow in place.

    Parameters
    ----------
    in_features : int
        Size of the flattened input (or of the flattened backbone output).
    hidden_sizes : sequence of int
        Width of each hidden layer, first to last. At least one layer.
    num_classes : int
        Outputs of the head. ``add_classes`` grows it for class-incremental streams.
    backbone : nn.Module, optional
        Feature extractor applied before flattening (e.g. a small conv net). It never grows.
    dropout : float
        Dropout after every hidden ReLU (0 disables it).

    Notes
    -----
    Every hidden unit carries a *cohort*: 0 for the units the model was built with, ``s``
    for units added by growth step ``s``. Cohorts live in buffers (``cohort_{l}``), so they
    follow the model through ``state_dict`` and checkpoints.
    """

    #: Whether each task reads its own head (a multi-head model), or every task one shared head.
    heads_per_task: bool = False
    hidden: Linears
    growth_steps: Tensor  # a buffer: growth steps taken so far (the last cohort)

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int],
        num_classes: int,
        backbone: nn.Module | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()

        if isinstance(hidden_sizes, (str, bytes)) or not hasattr(hidden_sizes, "__iter__"):
            raise ValueError(f"hidden_sizes must be a list of widths, got {hidden_sizes!r}")
        sizes = list(hidden_sizes)
        if not _whole(in_features):
            raise ValueError(f"in_features must be an integer >= 1, got {in_features!r}")
        if not sizes or any(not _whole(s) for s in sizes):
            raise ValueError(f"hidden_sizes must be a non-empty list of integer widths >= 1, got {sizes!r}")
        if not _whole(num_classes):
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_features = int(in_features)
        self.backbone = backbone
        widths = [self.in_features] + [int(s) for s in sizes]
        self.hidden = Linears(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.head = nn.Linear(widths[-1], int(num_classes))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        for i, width in enumerate(widths[1:]):
            self.register_buffer(f"cohort_{i}", torch.zeros(width, dtype=torch.long))
        self.register_buffer("growth_steps", torch.zeros((), dtype=torch.long))
        # an OrderedDict, not a dict: RemovableHandle keeps a weak reference to it
        self._observers: OrderedDict[int, Callable[[int, Tensor], None]] = OrderedDict()

    # ------------------------------------------------------------------ shape
    @property
    def hidden_sizes(self) -> list[int]:
        """Current width of every hidden layer (units, or channels of a convolution), first to last."""
        return [lin.weight.shape[0] for lin in self.hidden]

    def fan_in(self, layer: int) -> int:
        """Inputs of one unit of ``layer``: ``m`` of its weight rows (``c_in·kh·kw`` for a filter)."""
        return math.prod(self.hidden[layer].weight.shape[1:])

    def rows(self, layer: int) -> Tensor:
        """``layer``'s weight as rows ``(n, m)``: a view of the parameter (a filter is one row)."""
        w = self.hidden[layer].weight
        return w.view(w.shape[0], -1)

    def norm(self, layer: int) -> nn.Module | None:
        """The normalisation between ``layer``'s producer and its ReLU (an MLP has none)."""
        self._check_layer(layer)
        return None

    def pool(self, layer: int) -> nn.Module | None:
        """The pooling between ``layer``'s ReLU and its consumers (an MLP has none)."""
        self._check_layer(layer)
        return None

    def channel_consumers(self, layer: int) -> list[ChannelConsumer]:
        """How each consumer of a convolutional site reads its channels (an MLP has none)."""
        raise GrowthError(f"layer {layer} of a {type(self).__name__} has units, not channels")

    def reads_out(self, layer: int) -> bool:
        """Whether ``layer``'s consumers are the head (the task heads of a multi-head model)."""
        self._check_layer(layer)
        return layer + 1 == len(self.hidden)

    def next_site(self, layer: int) -> int | None:
        """The hidden layer whose producer reads ``layer`` (``None`` when the head or a layer that
        does not grow reads it)."""
        self._check_layer(layer)
        return layer + 1 if layer + 1 < len(self.hidden) else None

    @property
    def num_hidden_layers(self) -> int:
        """Number of growable hidden layers."""
        return len(self.hidden)

    @property
    def num_classes(self) -> int:
        """Current number of outputs of the head."""
        return self.head.out_features

    def cohort(self, layer: int) -> Tensor:
        """Growth step that added each unit of ``layer`` (0 = initial units), shape ``(n,)``."""
        self._check_layer(layer)
        return getattr(self, f"cohort_{layer}")

    def set_cohort(self, layer: int, cohort: Tensor) -> None:
        """Replace ``layer``'s cohorts ``(n,)`` (after units left it)."""
        self._check_layer(layer)
        setattr(self, f"cohort_{layer}", cohort)

    def consumers(self, layer: int) -> list[nn.Linear]:
        """The ``Linear`` modules that read hidden layer ``layer``'s output (their ``V``)."""
        self._check_layer(layer)
        return [self.hidden[layer + 1]] if layer + 1 < len(self.hidden) else [self.head]

    def outgoing(self, layer: int, p: int = 1) -> Tensor:
        """Per unit of ``layer`` ``(n,)``, the ``p``-norm over every consumer of its outgoing
        slices (``p=1``: the sum of magnitudes, continual backprop's ``Σ|w_out|``), detached."""
        return outgoing_norm(self.consumers(layer), self.hidden_sizes[layer], p)

    def _check_layer(self, layer: int) -> None:
        if not isinstance(layer, int) or not 0 <= layer < len(self.hidden):
            raise GrowthError(f"unknown hidden layer {layer!r}: this model has layers 0..{len(self.hidden) - 1}")

    # ---------------------------------------------------------------- forward
    def features(self, x: Tensor) -> Tensor:
        """Flattened input to the first hidden layer, shape ``(batch, in_features)``."""
        if self.backbone is not None:
            x = self.backbone(x)
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"GrowableMLP expects {self.in_features} input features after flattening, "
                f"got {x.shape[1]} (input shape {tuple(x.shape)})"
            )
        return x

    def forward(self, x: Tensor, task_labels: Tensor | None = None) -> Tensor:
        """Logits of shape ``(batch, num_classes)``; ``task_labels`` is ignored (single head)."""
        return self.run(x, task_labels)[0]

    def run(
        self,
        x: Tensor,
        task_labels: Tensor | int | None = None,
        *,
        weights: Mapping[int, tuple[Tensor, Tensor]] | None = None,
        gates: Mapping[int, Tensor] | None = None,
        capture: bool = False,
    ) -> tuple[Tensor, list[Tensor]]:
        """Forward pass with optional substitutions, used by extenders and distributors.

        Parameters
        ----------
        weights : mapping layer -> (W, b), optional
            Effective weight ``(n, m)`` and bias ``(n,)`` to use instead of the layer's own
            parameters (SWE's coupled weights).
        gates : mapping layer -> Tensor ``(n,)``, optional
            Multiplies the layer's pre-activations unit-wise (SVoD's ``1 + y``).
        capture : bool
            Return the post-ReLU activations ``(batch, n)`` of every hidden layer.
        """
        h = self.features(x)
        hidden_out: list[Tensor] = []
        for i, lin in enumerate(self.hidden):
            if weights is not None and i in weights:
                w, b = weights[i]
                z = nn.functional.linear(h, w, b)
            else:
                z = lin(h)
            if gates is not None and i in gates:
                z = z * gates[i]
            h = torch.relu(z)
            if capture:
                hidden_out.append(h)
            if self._observers:
                for observe in list(self._observers.values()):
                    observe(i, h)
            h = self.dropout(h)
        logits = self.apply_head(h, task_labels)
        self._count(x, logits)
        return logits, hidden_out

    def _count(self, x: Tensor, logits: Tensor) -> None:
        """Record this forward pass's multiply-adds with the active compute counter, if any."""
        counter = compute.active()
        if counter is not None:
            per_sample, first = self.macs_per_sample(x)
            counter.record(x.shape[0], per_sample, first, torch.is_grad_enabled() and logits.requires_grad)

    def macs_per_sample(self, x: Tensor | None = None) -> tuple[int, int]:
        """Multiply-adds of one sample's forward pass at the current widths, and of its first
        hidden layer alone: ``Σ in·out`` over the hidden layers and one head, plus a backbone's
        (measured once per input shape with PyTorch's FLOP counter; ``x``: an input batch)."""
        widths = [self.in_features, *self.hidden_sizes, self.num_classes]
        linear = sum(a * b for a, b in itertools.pairwise(widths))
        backbone = 0
        if self.backbone is not None and x is not None:
            key = tuple(x.shape[1:])
            cache = self.__dict__.setdefault("_backbone_macs", {})
            if key not in cache:
                from torch.utils.flop_counter import FlopCounterMode

                with torch.no_grad(), FlopCounterMode(display=False) as flops, compute.paused():
                    self.backbone(x[:1])
                cache[key] = flops.get_total_flops() // 2
            backbone = cache[key]
        return backbone + linear, widths[0] * widths[1]

    def observe_activations(self, fn: Callable[[int, Tensor], None]) -> RemovableHandle:
        """Call ``fn(layer, h)`` with the post-ReLU activations ``h`` ``(batch, n)`` of every
        hidden layer in every forward pass, until the returned handle's ``remove()``.

        Cheaper than forward hooks on the layers (which keep ``nn.Module``'s slow call path and
        see pre-activations); observers are not pickled or copied with the model.
        """
        handle = RemovableHandle(self._observers)
        self._observers[handle.id] = fn
        return handle

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_observers"] = OrderedDict()  # callbacks of whoever observes this instance, not part of the model
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_observers", OrderedDict())

    def apply_head(self, h: Tensor, task_labels: Tensor | int | None = None) -> Tensor:
        """Map the last hidden activations to logits (overridden by multi-head models)."""
        return self.head(h)

    # ----------------------------------------------------------------- growth
    @torch.no_grad()
    def add_units(
        self,
        layer: int,
        weight: Tensor,
        bias: Tensor,
        out_weight: Tensor | Sequence[Tensor] | None = None,
        cohort: int | None = None,
    ) -> Tensor:
        """Append ``k`` units to hidden layer ``layer``.

        Parameters
        ----------
        weight : Tensor, shape ``(k, m)``
            Incoming weights of the new units (rows appended to ``W``).
        bias : Tensor, shape ``(k,)``
        out_weight : Tensor ``(p, k)`` (or ``(p, k, 1)``) or one per consumer, optional
            Columns appended to every consumer's ``V``. ``None`` means zeros, which leaves
            the network's function unchanged exactly.
        cohort : int, optional
            Cohort recorded for the new units (default: the next growth step).

        Returns
        -------
        Tensor, shape ``(k,)``
            Indices of the new units in the layer.
        """
        self._check_layer(layer)
        lin = self.hidden[layer]
        n, m = lin.weight.shape
        k = weight.shape[0] if weight.dim() == 2 else -1
        if weight.shape != (k, m) or k < 0:
            raise GrowthError(
                f"new incoming weights for layer {layer} must have shape (k, {m}), got {tuple(weight.shape)}"
            )
        if bias.shape != (k,):
            raise GrowthError(f"new biases for layer {layer} must have shape ({k},), got {tuple(bias.shape)}")
        consumers = self.consumers(layer)
        # a unit view ``(p, k, 1)`` (what methods that handle every consumer kind write) is ``(p, k)`` here
        outs = [
            o.reshape(o.shape[0], -1) if o is not None and o.dim() == 3 else o
            for o in _per_consumer(out_weight, consumers, layer)
        ]
        if k == 0:
            return torch.empty(0, dtype=torch.long, device=lin.weight.device)
        for cons, out in zip(consumers, outs):
            if out is not None and out.shape != (cons.out_features, k):
                raise GrowthError(
                    f"new outgoing weights of layer {layer} must have shape ({cons.out_features}, {k}), "
                    f"got {tuple(out.shape)}"
                )
        ref = lin.weight
        _replace_linear(
            lin,
            torch.cat([ref, weight.to(ref)], 0),
            torch.cat([lin.bias, bias.to(ref)], 0),
        )
        for cons, out in zip(consumers, outs):
            cw = cons.weight
            extra = torch.zeros(cw.shape[0], k, dtype=cw.dtype, device=cw.device) if out is None else out.to(cw)
            _replace_linear(cons, torch.cat([cw, extra], 1), None)
        step = int(self.growth_steps) + 1 if cohort is None else int(cohort)
        old = self.cohort(layer)
        setattr(self, f"cohort_{layer}", torch.cat([old, old.new_full((k,), step)]))
        return torch.arange(n, n + k, device=ref.device)

    @torch.no_grad()
    def add_classes(self, n: int) -> None:
        """Grow the head by ``n`` outputs (old rows kept, new rows default-initialised)."""
        if n < 0:
            raise ValueError(f"add_classes needs n >= 0, got {n}")
        if n == 0:
            return
        w, b = default_linear_init(n, self.head.in_features)
        hw = self.head.weight
        _replace_linear(self.head, torch.cat([hw, w.to(hw)]), torch.cat([self.head.bias, b.to(hw)]))

    # ------------------------------------------------------------- snapshots
    def snapshot(self) -> ModelSnapshot:
        """Record the model so that :meth:`restore` can undo any growth, bit for bit."""
        return snapshot_module(self)

    def restore(self, snap: ModelSnapshot) -> None:
        """Put back the parameter objects, values, buffers and shapes of ``snap``."""
        restore_module(snap)

    # ------------------------------------------------------------ conversion
    @classmethod
    def from_sequential(cls, seq: nn.Sequential, in_features: int | None = None) -> GrowableMLP:
        """Build a GrowableMLP from ``Sequential(Flatten?, Linear, ReLU, ..., Linear)``.

        Weights are copied, and a ``Dropout`` rate (one for every layer) is kept. Anything but
        ``Linear``/``ReLU`` (plus ``Flatten``/``Dropout``) raises a ``GrowthError`` naming the
        offending module: SWE and the inactivity measures are defined for ReLU units only. Any
        other module grows as it is: ``grow(seq, ...)`` (see :mod:`clgrow.sites`).
        """
        linears: list[nn.Linear] = []
        rates = {float(m.p) for m in seq if isinstance(m, nn.Dropout)}
        if len(rates) > 1:
            raise GrowthError(
                f"a GrowableMLP has one dropout rate, this Sequential has {sorted(rates)}: grow the "
                "Sequential itself (grow(seq, ...) and GrowPlugin take any module)"
            )
        for idx, mod in enumerate(seq):
            if isinstance(mod, nn.Linear):
                linears.append(mod)
            elif isinstance(mod, (nn.ReLU, nn.Flatten, nn.Dropout, nn.Identity)):
                continue
            else:
                raise GrowthError(
                    f"cannot grow module {idx} ({type(mod).__name__}): growable layers must be Linear followed by ReLU"
                )
        if len(linears) < 2:
            raise GrowthError("a growable model needs at least one hidden Linear+ReLU and a head")
        acts = [m for m in seq if isinstance(m, nn.ReLU)]
        if len(acts) != len(linears) - 1:
            raise GrowthError("every hidden Linear must be followed by a ReLU (and the head by none)")
        first = linears[0].in_features if in_features is None else in_features
        dropout = rates.pop() if rates else 0.0  # kept: the built model drops out as the Sequential did
        model = cls(first, [lin.out_features for lin in linears[:-1]], linears[-1].out_features, dropout=dropout)
        with torch.no_grad():
            for dst, src in zip(list(model.hidden) + [model.head], linears):
                dst.weight.copy_(src.weight)
                if src.bias is not None:
                    dst.bias.copy_(src.bias)
                else:
                    dst.bias.zero_()
        return model
