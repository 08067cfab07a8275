"""Convolutional models whose channels grow: a VGG-style net and a ResNet.

Both keep :class:`~clgrow.GrowableMLP`'s interface, so every extender, distributor, metric and
reset works on them through the same calls. A hidden *layer* is a growth site: a producer
(``Conv2d`` or ``Linear``), its batch norm if any, and a ReLU; its width is its output channels or
units; :meth:`~clgrow.GrowableMLP.rows` sees a filter as one row of ``m = c_in·kh·kw`` entries and
:func:`~clgrow.model.unit_view` sees every consumer (the next convolution, a ``Linear`` after
``Flatten`` or after global average pooling) as ``(p, n, r)``. Activations reach observers and
``capture`` as one value per channel and sample, the mean of ``|h|`` over positions
(:func:`~clgrow.channels.channel_activity`): dead and τ-dormant channels follow as for units.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from clgrow import compute
from clgrow.channels import ChannelConsumer, add_channels, channel_activity
from clgrow.errors import GrowthError
from clgrow.model import GrowableMLP, Linears, _per_consumer, _whole

__all__ = ["GrowableCNN", "GrowableResNet", "POOL"]

#: The pooling marker in a :class:`GrowableCNN` channel list (a 2×2 max-pool after the convolution).
POOL = "M"


def _conv(mod: nn.Conv2d, h: Tensor, wb: tuple[Tensor, Tensor] | None) -> Tensor:
    """``mod(h)``, or the same convolution with substituted rows ``(n, m)`` and biases ``(n,)``."""
    if wb is None:
        return mod(h)
    w, b = wb
    return F.conv2d(h, w.view_as(mod.weight), b, mod.stride, mod.padding, mod.dilation, mod.groups)


def _gate(z: Tensor, gate: Tensor) -> Tensor:
    return z * (gate.view(-1, 1, 1) if z.dim() == 4 else gate)


class _ChannelSites(GrowableMLP):
    """What the convolutional models share: channel insertion, the per-channel activity that
    observers see, and shape checks of image inputs. Subclasses define the sites."""

    in_shape: tuple[int, int, int]
    norms: nn.ModuleList

    def _setup(self, in_shape: Sequence[int]) -> None:
        nn.Module.__init__(self)
        shape = list(in_shape) if hasattr(in_shape, "__iter__") else []
        if len(shape) != 3 or not all(_whole(s) for s in shape):
            raise ValueError(f"in_shape must be (channels, height, width) of integers >= 1, got {in_shape!r}")
        self.in_shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.in_features = math.prod(self.in_shape)
        self.backbone = None
        self._observers: OrderedDict[int, Callable[[int, Tensor], None]] = OrderedDict()

    def _finish(self, widths: Sequence[int]) -> None:
        for i, width in enumerate(widths):
            self.register_buffer(f"cohort_{i}", torch.zeros(width, dtype=torch.long))
        self.register_buffer("growth_steps", torch.zeros((), dtype=torch.long))

    def features(self, x: Tensor) -> Tensor:
        """The input as images ``(batch, C, H, W)``; flat rows of ``C·H·W`` values are reshaped."""
        if x.dim() == 2 and x.shape[1] == self.in_features:
            return x.view(x.shape[0], *self.in_shape)
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (batch, {', '.join(map(str, self.in_shape))}) "
                f"or (batch, {self.in_features}), got {tuple(x.shape)}"
            )
        return x

    def _emit(self, i: int, h: Tensor, capture: bool, out: list[Tensor]) -> None:
        if not capture and not self._observers:
            return
        a = channel_activity(h)
        if capture:
            out.append(a)
        for observe in list(self._observers.values()):
            observe(i, a)

    def norm(self, layer: int) -> nn.Module | None:
        """The batch norm between ``layer``'s producer and its ReLU (``None`` without one)."""
        self._check_layer(layer)
        mod = self.norms[layer]
        return None if isinstance(mod, nn.Identity) else mod

    @torch.no_grad()
    def add_units(
        self,
        layer: int,
        weight: Tensor,
        bias: Tensor,
        out_weight: Tensor | Sequence[Tensor | None] | None = None,
        cohort: int | None = None,
    ) -> Tensor:
        """Append ``k`` units (channels of a convolutional site) to ``layer``.

        ``weight`` holds the new rows ``(k, m)`` (filters flattened, or ``(k, c_in, kh, kw)``);
        ``out_weight`` one unit view ``(p, k, r)`` per consumer, or ``None`` for zeros (function
        preserving). A new batch-norm channel starts as weight 1, bias 0, mean 0, variance 1.
        """
        self._check_layer(layer)
        prod = self.hidden[layer]
        if not isinstance(prod, nn.Conv2d):
            return super().add_units(layer, weight, bias, out_weight, cohort)  # type: ignore[arg-type]
        m = self.fan_in(layer)
        k = weight.shape[0] if weight.dim() in (2, 4) else -1
        if (
            k < 0
            or math.prod(weight.shape[1:]) != m
            or (weight.dim() == 4 and weight.shape[1:] != prod.weight.shape[1:])
        ):
            raise GrowthError(
                f"new filters for layer {layer} must have shape (k, {m}) or (k, {', '.join(map(str, prod.weight.shape[1:]))}), "
                f"got {tuple(weight.shape)}"
            )
        consumers = self.channel_consumers(layer)
        outs = _per_consumer(out_weight, [c.module for c in consumers], layer)
        norm = self.norm(layer)
        if norm is not None and not isinstance(norm, nn.BatchNorm2d):
            raise GrowthError(f"layer {layer}: a convolution's norm must be BatchNorm2d, got {type(norm).__name__}")
        n = prod.out_channels
        idx = add_channels(prod, k, consumers, norm, weight.reshape(k, *prod.weight.shape[1:]), bias, outs)
        if k:
            step = int(self.growth_steps) + 1 if cohort is None else int(cohort)
            old = self.cohort(layer)
            setattr(self, f"cohort_{layer}", torch.cat([old, old.new_full((k,), step)]))
        return idx if k else torch.arange(n, n, device=prod.weight.device)


class GrowableCNN(_ChannelSites):
    """VGG-style network: convolution stages, then a growable MLP head; every layer grows.

    Each convolution is ``Conv2d(kernel_size, same padding)`` → ``BatchNorm2d`` (optional) →
    ReLU → 2×2 max-pool where the channel list says :data:`POOL` (``"M"``). The last feature map
    is flattened (channel-major: channel ``i`` owns ``H·W`` consecutive columns) or globally
    average-pooled, then ``Linear`` + ReLU layers and a head. Hidden *layers* are numbered over
    the convolutions first, then the linear layers.

    Parameters
    ----------
    in_shape : (C, H, W)
        Shape of one input image. Flat inputs of ``C·H·W`` values are accepted and reshaped.
    channels : sequence of int or "M"
        Output channels of each convolution, with ``"M"`` after a convolution that is pooled;
        e.g. the authors' CIFAR-100 net ``[32, 32, "M", 64, 64, "M"]``.
    hidden_sizes : sequence of int
        Widths of the linear layers after the convolutions (may be empty).
    num_classes : int
    batch_norm : bool
        A ``BatchNorm2d`` after every convolution.
    kernel_size : int
        Odd kernel size (padding keeps the spatial size).
    readout : {"flatten", "pool"}
        How the last feature map reaches the linear layers: flattened, or globally average-pooled.
    dropout : float
        Dropout after every linear hidden ReLU.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        channels: Sequence[int | str],
        hidden_sizes: Sequence[int],
        num_classes: int,
        *,
        batch_norm: bool = True,
        kernel_size: int = 3,
        readout: Literal["flatten", "pool"] = "flatten",
        dropout: float = 0.0,
    ) -> None:
        self._setup(in_shape)
        spec = list(channels) if not isinstance(channels, (str, bytes)) and hasattr(channels, "__iter__") else None
        if not spec or not _whole(spec[0]) or any(c != POOL and not _whole(c) for c in spec):
            raise ValueError(
                f"channels must list convolution widths >= 1 (with {POOL!r} for pooling), got {channels!r}"
            )
        if any(a == POOL and b == POOL for a, b in itertools.pairwise(spec)):
            raise ValueError(f"channels: one {POOL!r} per convolution at most, got {channels!r}")
        sizes = list(hidden_sizes) if hasattr(hidden_sizes, "__iter__") else None
        if sizes is None or any(not _whole(s) for s in sizes):
            raise ValueError(f"hidden_sizes must be a list of integer widths >= 1, got {hidden_sizes!r}")
        if not _whole(num_classes):
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        if not _whole(kernel_size) or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd integer >= 1, got {kernel_size!r}")
        if readout not in ("flatten", "pool"):
            raise ValueError(f"readout must be 'flatten' or 'pool', got {readout!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        c, height, width = self.in_shape
        convs: list[nn.Conv2d] = []
        norms: list[nn.Module] = []
        pools: list[nn.Module] = []
        for item in spec:
            if item == POOL:
                height, width = height // 2, width // 2
                if height < 1 or width < 1:
                    raise ValueError(f"channels {channels!r}: pooling shrinks a {self.in_shape} input to nothing")
                pools[-1] = nn.MaxPool2d(2)
                continue
            convs.append(nn.Conv2d(c, int(item), kernel_size, padding=kernel_size // 2))
            norms.append(nn.BatchNorm2d(int(item)) if batch_norm else nn.Identity())
            pools.append(nn.Identity())
            c = int(item)
        block = height * width if readout == "flatten" else 1
        widths = [c * block] + [int(s) for s in sizes]
        linears = [nn.Linear(a, b) for a, b in itertools.pairwise(widths)]
        self._assemble(convs, norms, pools, readout, linears, nn.Linear(widths[-1], int(num_classes)), dropout)

    def _assemble(
        self,
        convs: list[nn.Conv2d],
        norms: list[nn.Module],
        pools: list[nn.Module],
        readout: str,
        linears: list[nn.Linear],
        head: nn.Linear,
        dropout: float,
    ) -> None:
        """Set the modules up and trace the feature-map sizes with one dry forward pass."""
        self.readout = readout
        self.num_conv = len(convs)
        self.hidden = Linears([*convs, *linears])  # producers: convolutions, then linear layers
        self.norms = nn.ModuleList([*norms, *(nn.Identity() for _ in linears)])
        self.pools = nn.ModuleList(pools)
        self.head = head
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self._spatial: list[tuple[int, int]] = []  # each convolution's output size
        h = torch.zeros(1, *self.in_shape)
        with torch.no_grad():
            for conv, pool in zip(convs, pools):
                h = conv(h)
                self._spatial.append((h.shape[2], h.shape[3]))
                h = pool(h)
        if h.shape[2] < 1 or h.shape[3] < 1:
            raise GrowthError(f"the convolutions shrink a {self.in_shape} input to {tuple(h.shape[1:])}")
        self.block = h.shape[2] * h.shape[3] if readout == "flatten" else 1
        reads = (linears[0] if linears else head).in_features
        if reads != convs[-1].out_channels * self.block:
            raise GrowthError(
                f"the first Linear reads {reads} inputs, but the last convolution gives {convs[-1].out_channels} "
                f"channels x {self.block} ({readout})"
            )
        self._finish([conv.out_channels for conv in convs] + [lin.out_features for lin in linears])

    @classmethod
    def from_sequential(  # type: ignore[override]  # an image shape, not a feature count
        cls, seq: nn.Sequential, in_shape: Sequence[int]
    ) -> GrowableCNN:
        """Build a GrowableCNN from a user's ``nn.Sequential``, sharing no tensors with it.

        Accepted: ``Conv2d`` (one group, any kernel, stride and padding) → ``BatchNorm2d``? →
        ``ReLU`` → a pooling layer (``MaxPool2d``/``AvgPool2d``)?, repeated; then ``Flatten``, or
        ``AdaptiveAvgPool2d(1)`` + ``Flatten`` (global pooling); then ``Linear`` → ``ReLU``
        (→ ``Dropout``)? repeated, and a last ``Linear`` (the head). Anything else raises a
        ``GrowthError`` naming the module: growth sites are ReLU layers.
        """
        mods = [m for m in seq if not isinstance(m, nn.Identity)]
        convs: list[nn.Conv2d] = []
        norms: list[nn.Module] = []
        pools: list[nn.Module] = []
        linears: list[nn.Linear] = []
        readout = "flatten"
        dropout = 0.0
        i = 0

        def bad(why: str) -> GrowthError:
            name = type(mods[i]).__name__ if i < len(mods) else "the end"
            return GrowthError(f"cannot grow module {i} ({name}) of the Sequential: {why}")

        while i < len(mods) and isinstance(mods[i], nn.Conv2d):
            conv = mods[i]
            assert isinstance(conv, nn.Conv2d)
            if conv.groups != 1:
                raise bad("grouped convolutions cannot grow channel by channel")
            if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
                raise bad("give the padding as numbers, with zeros (GradMax unfolds the input)")
            i += 1
            norm: nn.Module = nn.Identity()
            if i < len(mods) and isinstance(mods[i], nn.BatchNorm2d):
                norm = copy.deepcopy(mods[i])
                i += 1
            if i >= len(mods) or not isinstance(mods[i], nn.ReLU):
                raise bad("every convolution must be followed by (BatchNorm2d and) ReLU")
            i += 1
            pool: nn.Module = nn.Identity()
            if i < len(mods) and isinstance(mods[i], (nn.MaxPool2d, nn.AvgPool2d)):
                pool = copy.deepcopy(mods[i])
                i += 1
            convs.append(copy.deepcopy(conv))
            norms.append(norm)
            pools.append(pool)
        if not convs:
            raise bad("a GrowableCNN starts with a Conv2d (use GrowableMLP.from_sequential for an MLP)")
        if i < len(mods) and isinstance(mods[i], nn.AdaptiveAvgPool2d):
            if mods[i].output_size not in (1, (1, 1)):
                raise bad("only global average pooling (output size 1) can read channels")
            readout = "pool"
            i += 1
        if i >= len(mods) or not isinstance(mods[i], nn.Flatten):
            raise bad("the convolutions must end in Flatten (or AdaptiveAvgPool2d(1) and Flatten)")
        i += 1
        while i < len(mods):
            if not isinstance(mods[i], nn.Linear):
                raise bad("after Flatten: Linear, ReLU and Dropout only")
            linears.append(copy.deepcopy(mods[i]))  # type: ignore[arg-type]
            i += 1
            if i < len(mods) and isinstance(mods[i], nn.ReLU):
                i += 1
                if i < len(mods) and isinstance(mods[i], nn.Dropout):
                    drop = mods[i]
                    assert isinstance(drop, nn.Dropout)
                    dropout = float(drop.p)
                    i += 1
            elif i < len(mods):
                raise bad("every hidden Linear must be followed by a ReLU")
        if not linears:
            raise bad("the model needs a Linear head")
        for lin in linears:
            if lin.bias is None:
                raise GrowthError("every Linear needs a bias to grow")
        for conv in convs:
            if conv.bias is None:  # growth sites move biases: give it a zero one (the function is unchanged)
                conv.bias = nn.Parameter(torch.zeros(conv.out_channels))
        model = cls.__new__(cls)
        model._setup(in_shape)
        model._assemble(convs, norms, pools, readout, linears[:-1], linears[-1], dropout)
        return model

    def _readout(self, h: Tensor) -> Tensor:
        return h.flatten(1) if self.readout == "flatten" else h.mean(dim=(2, 3))

    def run(
        self,
        x: Tensor,
        task_labels: Tensor | int | None = None,
        *,
        weights: Mapping[int, tuple[Tensor, Tensor]] | None = None,
        gates: Mapping[int, Tensor] | None = None,
        capture: bool = False,
    ) -> tuple[Tensor, list[Tensor]]:
        """As :meth:`GrowableMLP.run`; a convolution's substituted weight is its rows ``(n, m)``,
        its gate ``(n,)`` multiplies every position, and captured activations are ``(batch, n)``
        per-channel means of ``|h|``."""
        h = self.features(x)
        out: list[Tensor] = []
        nc = self.num_conv
        for i, mod in enumerate(self.hidden):
            wb = weights.get(i) if weights is not None else None
            if i < nc:
                z = _conv(mod, h, wb)  # type: ignore[arg-type]
            else:
                if i == nc:
                    h = self._readout(h)
                z = mod(h) if wb is None else F.linear(h, *wb)
            z = self.norms[i](z)
            if gates is not None and i in gates:
                z = _gate(z, gates[i])
            h = torch.relu(z)
            self._emit(i, h, capture, out)
            h = self.pools[i](h) if i < nc else self.dropout(h)
        if nc == len(self.hidden):
            h = self._readout(h)
        logits = self.apply_head(h, task_labels)
        self._count(x, logits)
        return logits, out

    def pool(self, layer: int) -> nn.Module | None:
        self._check_layer(layer)
        mod = self.pools[layer] if layer < self.num_conv else None
        return None if mod is None or isinstance(mod, nn.Identity) else mod

    def channel_consumers(self, layer: int) -> list[ChannelConsumer]:
        if layer + 1 < self.num_conv:
            return [ChannelConsumer(self.hidden[layer + 1], "conv")]
        kind: Literal["flatten", "pool"] = "flatten" if self.readout == "flatten" else "pool"
        return [ChannelConsumer(cons, kind, self.block) for cons in self.consumers(layer)]

    def macs_per_sample(self, x: Tensor | None = None) -> tuple[int, int]:
        """Multiply-adds of one sample's forward pass at the current widths, and of its first layer."""
        per: list[int] = []
        for i, mod in enumerate(self.hidden):
            per.append(mod.weight.numel() * (math.prod(self._spatial[i]) if i < self.num_conv else 1))
        head_in = self.hidden_sizes[-1] * (self.block if self.num_conv == len(self.hidden) else 1)
        return sum(per) + head_in * self.num_classes, per[0]


class _Block(nn.Module):
    """A basic residual block: conv1 → bn1 → ReLU → conv2 → bn2, plus the shortcut, then ReLU.
    conv1's output channels are the growth site; the stream's width (conv2's output) is fixed."""

    def __init__(self, c_in: int, inner: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, inner, 3, stride, 1)  # a bias, as every site's producer has one
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class _Blocks(nn.ModuleList):
    """The residual blocks: a ``ModuleList`` whose items are typed as ``_Block``."""

    def __getitem__(self, idx: int) -> _Block:  # type: ignore[override]
        return super().__getitem__(idx)  # type: ignore[return-value]

    def __iter__(self) -> Iterator[_Block]:
        return super().__iter__()  # type: ignore[return-value]


class GrowableResNet(_ChannelSites):
    """A ResNet-18-shaped network whose blocks' inner channels grow.

    A 3×3 stem convolution with batch norm, then four stages of ``blocks`` basic blocks at widths
    ``nf, 2nf, 4nf, 8nf`` (stride 2 from the second stage), global average pooling and a head:
    with ``nf=20`` this is the size of Avalanche's ``SlimResNet18``. Hidden layer ``i`` is block
    ``i``'s ``conv1 → bn1 → ReLU``; its one consumer is the block's ``conv2``. The residual stream
    keeps its width, so a block's output shape never changes. ``conv1`` keeps a bias (redundant
    before batch norm, but every site's producer then has the same parameters); the other
    convolutions have none.

    Parameters
    ----------
    in_shape : (C, H, W)
    num_classes : int
    nf : int
        Width of the first stage.
    blocks : sequence of int
        Blocks per stage (four stages of two: ResNet-18).
    inner : sequence of int, optional
        Each block's inner width (default: its stage's width); what a grown model's widths are
        rebuilt from.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        nf: int = 20,
        blocks: Sequence[int] = (2, 2, 2, 2),
        inner: Sequence[int] | None = None,
    ) -> None:
        self._setup(in_shape)
        if not _whole(nf):
            raise ValueError(f"nf must be an integer >= 1, got {nf!r}")
        if not _whole(num_classes):
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        stages = list(blocks)
        if not stages or any(not _whole(b) for b in stages):
            raise ValueError(f"blocks must list blocks per stage (integers >= 1), got {blocks!r}")
        self.stem = nn.Sequential(nn.Conv2d(self.in_shape[0], nf, 3, 1, 1, bias=False), nn.BatchNorm2d(nf), nn.ReLU())
        widths = [nf * 2**s for s, count in enumerate(stages) for _ in range(count)]
        inner_widths = list(widths if inner is None else inner)
        if len(inner_widths) != len(widths) or not all(_whole(w) for w in inner_widths):
            raise ValueError(f"inner must give {len(widths)} block widths >= 1, got {inner!r}")
        layers: list[_Block] = []
        c = nf
        for s, count in enumerate(stages):
            width = nf * 2**s
            for b in range(count):
                layers.append(_Block(c, int(inner_widths[len(layers)]), width, 2 if s > 0 and b == 0 else 1))
                c = width
        self.blocks = _Blocks(layers)
        self.hidden = Linears([blk.conv1 for blk in layers])  # the same modules, seen as sites
        self.norms = nn.ModuleList([blk.bn1 for blk in layers])
        self.head = nn.Linear(c, int(num_classes))
        self.dropout = nn.Identity()
        self._finish([blk.conv1.out_channels for blk in layers])

    def run(
        self,
        x: Tensor,
        task_labels: Tensor | int | None = None,
        *,
        weights: Mapping[int, tuple[Tensor, Tensor]] | None = None,
        gates: Mapping[int, Tensor] | None = None,
        capture: bool = False,
    ) -> tuple[Tensor, list[Tensor]]:
        """As :meth:`GrowableCNN.run`, over the blocks' inner layers."""
        h = self.stem(self.features(x))
        out: list[Tensor] = []
        for i, blk in enumerate(self.blocks):
            wb = weights.get(i) if weights is not None else None
            z = blk.bn1(_conv(blk.conv1, h, wb))
            if gates is not None and i in gates:
                z = _gate(z, gates[i])
            inner = torch.relu(z)
            self._emit(i, inner, capture, out)
            h = torch.relu(blk.bn2(blk.conv2(inner)) + blk.shortcut(h))
        logits = self.apply_head(h.mean(dim=(2, 3)), task_labels)
        self._count(x, logits)
        return logits, out

    def consumers(self, layer: int) -> list[nn.Linear]:
        """Block ``layer``'s ``conv2``, the one reader of its inner channels."""
        self._check_layer(layer)
        return [self.blocks[layer].conv2]  # type: ignore[list-item]

    def next_site(self, layer: int) -> int | None:
        """``None``: a block's inner channels are read by its ``conv2``, which does not grow."""
        self._check_layer(layer)
        return None

    def reads_out(self, layer: int) -> bool:
        """``False``: the head reads the residual stream, never a block's inner channels."""
        self._check_layer(layer)
        return False

    def channel_consumers(self, layer: int) -> list[ChannelConsumer]:
        return [ChannelConsumer(self.blocks[layer].conv2, "conv")]

    def macs_per_sample(self, x: Tensor | None = None) -> tuple[int, int]:
        """Multiply-adds of one sample's forward pass (measured once per width and input shape)."""
        key = (tuple(self.hidden_sizes), self.in_shape)
        cache = self.__dict__.setdefault("_macs", {})
        if key not in cache:
            from torch.utils.flop_counter import FlopCounterMode

            probe = torch.zeros(1, *self.in_shape, device=self.rows(0).device)
            was = self.training
            self.eval()
            with torch.no_grad(), FlopCounterMode(display=False) as flops, compute.paused():
                self.run(probe)
            self.train(was)
            first = self.stem[0]
            assert isinstance(first, nn.Conv2d)
            cache[key] = (flops.get_total_flops() // 2, first.weight.numel() * math.prod(self.in_shape[1:]))
        return cache[key]
