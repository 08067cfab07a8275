"""A batch-level data path for Avalanche strategies: whole mini-batches gathered from tensors.

Avalanche fetches every sample through ``AvalancheDataset.__getitem__`` (subset and concat
index remapping, transform groups, data attributes) and collates them one by one; on an MLP that
costs more than the forward and backward passes. :class:`BatchDataPlugin` replaces the strategy's
data loader, once the strategy and its plugins have built it, by :class:`TensorBatchLoader`,
which draws the *same* index batches from Avalanche's own samplers (same random stream, same
order, replay buffer and task balancing included) and gathers each batch with one tensor index
per leaf data set.

It applies only where it can be exact: every leaf of every data set is a
:class:`clgrow.strategies.samples.TensorSamples`, no transform touches the inputs (target transforms, such as
the class remapping of task-incremental benchmarks, are applied to the label values), and the
only per-sample attribute is the task label. Each resolved data set is checked against
Avalanche's own ``__getitem__`` on a few positions. Anything else (custom transforms, DER's stored
logits, data sets of other kinds) keeps Avalanche's loader, unchanged.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from avalanche.benchmarks.utils.data import AvalancheDataset
from avalanche.benchmarks.utils.data_loader import MultiDatasetDataLoader, MultiDatasetSampler
from avalanche.benchmarks.utils.flat_data import ConstantSequence, FlatData, LazyIndices, LazyRange
from avalanche.benchmarks.utils.transforms import TupleTransform
from avalanche.core import SupervisedPlugin
from torch import Tensor
from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

from clgrow.strategies.samples import TensorSamples

__all__ = ["BatchDataPlugin", "TensorBatchLoader", "resolve_dataset", "ResolvedDataset", "AVALANCHE_VERSION"]

#: The Avalanche release whose private attributes the batch path reads (a test pins it).
AVALANCHE_VERSION = "0.6.0"

_TASK_ATTRIBUTE = "targets_task_labels"
_SPOT_CHECKS = 4


@dataclass
class ResolvedDataset:
    """Where each position of an Avalanche data set lives: leaf, row, label and task label.

    Attributes
    ----------
    leaves : list of TensorSamples
    leaf : LongTensor, shape (N,)
        Index into ``leaves`` per position.
    row : LongTensor, shape (N,)
        Row inside that leaf.
    y : LongTensor, shape (N,)
        Labels after the data set's target transforms.
    t : LongTensor, shape (N,)
        Task labels.
    """

    leaves: list[TensorSamples]
    leaf: Tensor
    row: Tensor
    y: Tensor
    t: Tensor

    def __len__(self) -> int:
        return len(self.row)

    def gather(self, positions: Tensor) -> list[Tensor]:
        """``[x, y, t]`` for ``positions`` (LongTensor, shape (B,)): what Avalanche's collate returns."""
        # index_select rather than [positions]: the same values, without advanced indexing's cost
        rows = self.row.index_select(0, positions)
        if len(self.leaves) == 1:
            x = self.leaves[0].take(rows)
        else:  # one index per leaf, then the rows put back in batch order
            which = self.leaf.index_select(0, positions)
            wheres = [(which == i).nonzero().squeeze(1) for i in range(len(self.leaves))]
            taken = torch.cat([leaf.take(rows.index_select(0, w)) for leaf, w in zip(self.leaves, wheres)])
            x = torch.empty_like(taken)
            x[torch.cat(wheres)] = taken
        return [x, self.y.index_select(0, positions), self.t.index_select(0, positions)]


def _index_array(indices: Any) -> np.ndarray:
    if isinstance(indices, LazyRange):
        return np.arange(indices._start, indices._end, dtype=np.int64) + indices._offset
    if isinstance(indices, LazyIndices):
        indices._to_eager()
        eager = indices._eager_list
        return _index_array(eager) if isinstance(eager, LazyIndices) else np.asarray(eager, dtype=np.int64)
    return np.asarray(indices, dtype=np.int64)


def _transforms(node: Any, group: str) -> list[Any]:
    out = []
    for attr in ("_frozen_transform_groups", "_transform_groups"):
        groups = getattr(node, attr, None)
        if groups is not None:
            table = groups.transform_groups
            # Avalanche's default groups are a defaultdict filled on first access: read them the
            # way its __getitem__ does, so a memoised walk does not depend on what was read before.
            tf = table[group] if isinstance(table, defaultdict) else table.get(group)
            if tf is not None:
                out.append(tf)
    return out


class _Unresolvable(Exception):
    pass


def _leaf_index(leaves: list[TensorSamples], leaf: TensorSamples) -> int:
    """Position of ``leaf`` in ``leaves`` (by identity), appending it if new."""
    for i, known in enumerate(leaves):
        if known is leaf:
            return i
    leaves.append(leaf)
    return len(leaves) - 1


def _concat_select(node: Any, parts: list[tuple[np.ndarray, ...]], width: int) -> tuple[np.ndarray, ...]:
    """A flat-data node's per-position columns: its children's concatenated, then its own subset."""
    cols = [np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, np.int64) for k in range(width)]
    if node._indices is not None:
        idx = _index_array(node._indices)
        cols = [c[idx] for c in cols]
    return tuple(cols)


def _label_map(transforms: list[Any]) -> list[Any]:
    """The target transforms of a node, refusing any input transform."""
    maps = []
    for tf in transforms:
        if not isinstance(tf, TupleTransform):
            raise _Unresolvable(f"transform {tf!r}")
        if tf.transforms and tf.transforms[0] is not None:
            raise _Unresolvable("an input transform")
        if any(t is not None for t in tf.transforms[2:]):
            raise _Unresolvable("a transform on a third element")
        if len(tf.transforms) > 1 and tf.transforms[1] is not None:
            maps.append(tf.transforms[1])
    return maps


# (leaves, leaf index, row, label) per position of a node.
_Part = tuple[tuple[TensorSamples, ...], np.ndarray, np.ndarray, np.ndarray]


class _NodeMemo:
    """Values per object identity that live as long as the object (weakly referenced; by
    identity, as some of Avalanche's nodes define ``__eq__`` and are unhashable)."""

    def __init__(self) -> None:
        self._items: dict[int, tuple[weakref.ref, Any]] = {}

    def get(self, node: Any) -> Any:
        item = self._items.get(id(node))
        return item[1] if item is not None and item[0]() is node else None

    def put(self, node: Any, value: Any) -> None:
        key = id(node)
        self._items[key] = (weakref.ref(node, lambda _ref: self._items.pop(key, None)), value)


# Avalanche's data sets are immutable trees, and every evaluation (and replay epoch) builds a new
# root over the same subtrees: each subtree is resolved once per transform group.
_WALKED = _NodeMemo()  # node -> {group: _Part}
_ATTRIBUTES = _NodeMemo()  # node -> values


def _walk(node: Any, group: str) -> _Part:
    """(leaves, leaf index, row, label) per position of ``node``; labels after the target
    transforms met on the way. Memoised per node and group; callers must not modify the arrays."""
    if isinstance(node, AvalancheDataset):
        return _walk(node._flat_data, group)
    if isinstance(node, TensorSamples):  # not memoised: its entry would hold the leaf itself alive
        return _walk_node(node, group)
    if not isinstance(node, FlatData):
        raise _Unresolvable(f"a data set of type {type(node).__name__}")
    memo = _WALKED.get(node)
    if memo is not None and group in memo:
        return memo[group]
    part = _walk_node(node, group)
    _WALKED.put(node, {**(memo or {}), group: part})
    return part


def _walk_node(node: TensorSamples | FlatData, group: str) -> _Part:
    if isinstance(node, TensorSamples):
        n = len(node)
        return (node,), np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64), node.y.numpy().astype(np.int64)
    leaves: list[TensorSamples] = []
    parts = []
    for child in node._datasets:
        child_leaves, leaf, row, y = _walk(child, group)
        remap = np.array([_leaf_index(leaves, lf) for lf in child_leaves], dtype=np.int64)
        parts.append((remap[leaf], row, y))
    leaf, row, y = _concat_select(node, parts, 3)  # type: ignore[arg-type]  # int64 arrays among any
    for fn in _label_map(_transforms(node, group)):
        values, inverse = np.unique(y, return_inverse=True)
        y = np.array([int(fn(int(v))) for v in values], dtype=np.int64)[inverse.reshape(-1)]
    return tuple(leaves), leaf, row, y


def _attribute_values(node: Any) -> np.ndarray:
    """Values of a data attribute's flat data, vectorised for the layouts Avalanche builds
    (memoised per flat-data node, like :func:`_walk`)."""
    if isinstance(node, ConstantSequence):
        return np.full(len(node), int(node._constant_value), dtype=np.int64)
    if isinstance(node, FlatData):
        known = _ATTRIBUTES.get(node)
        if known is None:
            known = _concat_select(node, [(_attribute_values(c),) for c in node._datasets], 1)[0]
            _ATTRIBUTES.put(node, known)
        return known
    if isinstance(node, Tensor):
        return node.numpy().astype(np.int64)
    return np.asarray(list(node), dtype=np.int64)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    return bool(a == b)


def resolve_dataset(dataset: Any) -> ResolvedDataset | None:
    """Resolve an Avalanche data set to tensor rows, or ``None`` where the fast path would not be exact."""
    if not isinstance(dataset, AvalancheDataset) or len(dataset) == 0:
        return None
    in_getitem = [name for name, da in dataset._data_attributes.items() if da.use_in_getitem]
    if in_getitem != [_TASK_ATTRIBUTE]:
        return None
    group = dataset._flat_data._transform_groups.current_group
    try:
        key = _root_key(dataset, group)
    except (_Unresolvable, AttributeError, TypeError):
        key = None
    if key is not None:
        first, rest = key
        for rest_before, resolved_before in _RESOLVED.get(first) or []:
            if len(rest_before) == len(rest) and all(a is b for a, b in zip(rest_before, rest)):
                return resolved_before
    # Read the reference samples first: Avalanche fills some transform groups (class remapping)
    # on first access, and the walk below must see them.
    n = len(dataset)
    checks = {
        pos: dataset[pos] for pos in sorted({0, n - 1, *np.linspace(0, n - 1, _SPOT_CHECKS).astype(int).tolist()})
    }
    try:
        leaves, leaf, row, y = _walk(dataset._flat_data, group)
        t = _attribute_values(dataset._data_attributes[_TASK_ATTRIBUTE].data)
    except (_Unresolvable, AttributeError, TypeError, ValueError, IndexError, KeyError):
        return None
    if not (len(leaf) == len(t) == n):
        return None
    resolved = ResolvedDataset(
        list(leaves), torch.from_numpy(leaf), torch.from_numpy(row), torch.from_numpy(y), torch.from_numpy(t)
    )
    # Exactness guard: Avalanche's own __getitem__ at a few positions must agree.
    for pos, ref in checks.items():
        x, yy, tt = (v[0] for v in resolved.gather(torch.tensor([pos])))
        if len(ref) != 3 or not (_same(ref[0], x) and _same(ref[1], yy) and _same(ref[2], tt)):
            return None
    if key is not None:
        entries = [(key[1], resolved), *(_RESOLVED.get(key[0]) or [])][:_ROOTS_PER_SUBTREE]
        _RESOLVED.put(key[0], entries)
    return resolved


# A resolved root, by what it is made of. Avalanche builds a new root node at every evaluation
# (``dataset.eval()``) and replay epoch, over the same children, index list and transforms; a
# root made of the very same objects resolves to the same rows, so it is resolved and spot-checked
# once. Entries hang on the root's first child, weakly (they go with it), and hold the root's
# other parts, so no identity is reused while an entry lives; a few per child (replay makes a
# new index list per experience).
_RESOLVED = _NodeMemo()
_ROOTS_PER_SUBTREE = 8


def _root_key(dataset: AvalancheDataset, group: str) -> tuple[Any, tuple[Any, ...]] | None:
    """(the root's first child, every other object its rows depend on), or ``None`` where the
    first child is a leaf (an entry would keep the data alive through the resolved leaves)."""
    root = dataset._flat_data
    if not isinstance(root, FlatData) or not root._datasets or not isinstance(root._datasets[0], FlatData):
        return None
    rest = (
        *root._datasets[1:],
        type(root),
        root._indices,
        group,
        *_transforms(root, group),
        dataset._data_attributes[_TASK_ATTRIBUTE].data,
        type(dataset),
    )
    return root._datasets[0], rest


class TensorBatchLoader:
    """Drop-in for an Avalanche :class:`MultiDatasetDataLoader`: same batches, gathered from tensors.

    Parameters
    ----------
    loader : MultiDatasetDataLoader
        The loader it stands in for (train, replay, task-balanced or evaluation); its samplers
        decide every batch.
    resolved : list of ResolvedDataset
        One per data set of ``loader``, in order.
    """

    def __init__(self, loader: MultiDatasetDataLoader, resolved: list[ResolvedDataset]) -> None:
        self.reference = loader
        self.datasets = loader.datasets  # as Avalanche's loaders expose them
        if len(resolved) == 1:
            self._all = resolved[0]
        else:  # the concatenation the samplers' positions index, over one list of leaves
            leaves: list[TensorSamples] = []
            leaf_parts = [
                torch.tensor([_leaf_index(leaves, lf) for lf in r.leaves], dtype=torch.long)[r.leaf] for r in resolved
            ]
            self._all = ResolvedDataset(
                leaves,
                torch.cat(leaf_parts),
                torch.cat([r.row for r in resolved]),
                torch.cat([r.y for r in resolved]),
                torch.cat([r.t for r in resolved]),
            )

    def __len__(self) -> int:
        return len(self.reference)

    def __iter__(self) -> Iterator[list[Tensor]]:
        ref = self.reference
        # torch's DataLoader draws its worker base seed from the global generator on every
        # iteration; drawing it here too keeps the random stream (and so every later
        # shuffle) identical to Avalanche's own path.
        torch.empty((), dtype=torch.int64).random_()
        samplers = ref._create_samplers(ref.datasets, ref.batch_sizes, ref.distributed_sampling, ref.loader_kwargs)
        streams = _batch_streams(samplers)
        if streams is not None:  # every data set's order drawn in one tensor op, when its sampler would draw it
            for positions in _multi_dataset_batches(streams, ref):
                yield self._all.gather(positions)
            return
        batches = MultiDatasetSampler(
            ref.datasets,
            samplers,
            termination_dataset_idx=ref.termination_dataset,
            oversample_small_datasets=ref.oversample_small_datasets,
            never_ending=ref.never_ending,
        )
        for positions in batches:
            yield self._all.gather(torch.as_tensor(positions, dtype=torch.long))


class _Batches:
    """One data set's ``BatchSampler`` over a sequential or plain random sampler, as tensors.

    Like the sampler's iterator, a pass draws its order (for a random sampler: one seed from
    the global generator, then ``randperm``, exactly as ``RandomSampler.__iter__``) at its
    first batch, not before; :meth:`restart` begins a new pass.
    """

    def __init__(self, bs: BatchSampler, offset: int) -> None:
        self.random = type(bs.sampler) is RandomSampler
        self.n = len(bs.sampler)  # type: ignore[arg-type]  # Avalanche's samplers are sized
        self.size = bs.batch_size
        self.drop_last = bs.drop_last
        self.batches = len(bs)
        self.offset = offset
        self.restart()

    def restart(self) -> None:
        self.order: Tensor | None = None
        self.pos = 0

    def next(self) -> Tensor | None:
        """The next batch's positions (offset into the concatenation), or ``None`` at the end of the pass."""
        if self.order is None:
            if self.random:
                seed = int(torch.empty((), dtype=torch.int64).random_().item())
                generator = torch.Generator()
                generator.manual_seed(seed)
                self.order = torch.randperm(self.n, generator=generator)
            else:
                self.order = torch.arange(self.n)
            if self.offset:
                self.order += self.offset
        end = min(self.pos + self.size, self.n)
        if end <= self.pos or (self.drop_last and end - self.pos < self.size):
            return None
        batch = self.order[self.pos : end]
        self.pos = end
        return batch


def _batch_streams(samplers: list[Any]) -> list[_Batches] | None:
    """A :class:`_Batches` per sampler, or ``None`` if any is not a lone ``BatchSampler`` over a
    sequential sampler or a random one without replacement, generator or sample count of its own."""
    streams, offset = [], 0
    for bs in samplers:
        if type(bs) is not BatchSampler:
            return None
        inner = bs.sampler
        if type(inner) is RandomSampler:
            if inner.replacement or inner.generator is not None or inner.num_samples != len(inner.data_source):
                return None
        elif type(inner) is not SequentialSampler:
            return None
        streams.append(_Batches(bs, offset))
        offset += len(inner)
    return streams


def _multi_dataset_batches(streams: list[_Batches], ref: MultiDatasetDataLoader) -> Iterator[Tensor]:
    """The batches of Avalanche's ``MultiDatasetSampler`` over ``streams``, in its order and with its
    draws: the termination data set first, the others restarted when they run out (oversampling)
    or dropped, each batch its data sets' parts in data-set order."""
    k = len(streams)
    never = ref.never_ending
    term = -1 if never else ref.termination_dataset
    oversample = True if never else ref.oversample_small_datasets
    order = list(range(k)) if never else [term] + [i for i in range(k) if i != term]
    alive = [True] * k
    while True:
        parts: list[Tensor | None] = [None] * k
        for i in order:
            if not alive[i]:
                continue
            is_term = i == term
            stream = streams[i]
            if stream.batches == 0:
                if is_term:
                    return
                alive[i] = False
                continue
            batch = stream.next()
            if batch is None:
                if (is_term or not oversample) and not never:
                    if is_term:
                        return
                    alive[i] = False
                    continue
                stream.restart()
                batch = stream.next()
            parts[i] = batch
        present = [p for p in parts if p is not None]
        yield present[0] if len(present) == 1 else torch.cat(present)


def fast_loader(loader: Any) -> TensorBatchLoader | None:
    """A :class:`TensorBatchLoader` standing in for ``loader``, or ``None`` where it would not be exact."""
    if isinstance(loader, TensorBatchLoader) or not isinstance(loader, MultiDatasetDataLoader):
        return None
    kw = loader.loader_kwargs
    if kw.get("num_workers", 0) or "sampler" in kw or "batch_sampler" in kw:
        return None
    resolved = [resolve_dataset(d) for d in loader.datasets]
    if any(r is None for r in resolved):
        return None
    return TensorBatchLoader(loader, resolved)  # type: ignore[arg-type]


class BatchDataPlugin(SupervisedPlugin):
    """Swap the strategy's data loader for a :class:`TensorBatchLoader` where that is exact.

    Runs before every training epoch (after the strategy and its plugins, replay included, have
    built the loader, and before growth reads it) and before every evaluated experience.
    ``used`` counts the loaders replaced and ``kept`` those left to Avalanche.
    """

    #: Where it stands among the strategy's plugins (``build_strategy`` sorts by it): first: every other plugin reads the batches it gathers.
    plugin_order: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        self.used = 0
        self.kept = 0

    def _swap(self, strategy: Any) -> None:
        fast = fast_loader(strategy.dataloader)
        if fast is not None:
            strategy.dataloader = fast
            self.used += 1
        elif not isinstance(strategy.dataloader, TensorBatchLoader):
            self.kept += 1

    def before_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._swap(strategy)

    def before_eval_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._swap(strategy)
