"""Growth settings, declared once: the plugin takes them, run configs nest them, the CLI reads them.

:class:`GrowthConfig` is the single place where a growth option (units per step, extender and
distributor with their keyword arguments, schedule, cap, layers, head growth, optimizer-state
carry) is named, given its default and validated. ``GROWTH_PRESETS`` names common methods as
partial configurations. The methods' own arguments are declared in :mod:`clgrow.methods` (and by
third-party methods where they register); they are checked here from those declarations.

Nothing here imports torch: the command line parses and checks settings with this module; the
methods (and torch) are imported only where one is built.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clgrow.errors import ConfigError
from clgrow.methods import PAPER_SVOD, PAPER_SWE
from clgrow.registry import REGISTRIES, distributors, extenders
from clgrow.strategies.settings import Setting, custom, flag, one_of, setting, settings_of, whole

if TYPE_CHECKING:
    from clgrow.methods.distributor import Distributor
    from clgrow.methods.extender import Extender
    from clgrow.sites import Growable

#: How units are kept by the experience that recruited them (``clgrow.strategies.isolation``).
ISOLATION = ("none", "freeze", "auto")

__all__ = [
    "ISOLATION",
    "GrowthConfig",
    "GROWTH_PRESETS",
    "PAPER_SWE",
    "PAPER_SVOD",
    "parse_growth",
    "growth_methods",
    "growth_from_method",
    "known_methods",
    "over_budget",
    "units_under_budget",
]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _schedule_ok(k: Any) -> bool:
    return (
        callable(k)
        or (_is_int(k) and k >= 0)
        or (isinstance(k, list) and bool(k) and all(_is_int(v) and v >= 0 for v in k))
    )


def _layers_ok(v: Any) -> bool:
    return v is None or (isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_int(i) and i >= 0 for i in v))


@dataclass(frozen=True)
class TrainingDefaults:
    """How a run trains when nothing says otherwise: one declaration for the Python API
    (``build_strategy``), the command line and grids (``RunConfig``), so a README example and a
    CLI run of the same setting reach the same number."""

    train_epochs: int = 3
    train_mb_size: int = 32
    eval_mb_size: int = 512
    lr: float = 1e-3


#: The training defaults every entry point shares.
TRAINING = TrainingDefaults()


@dataclass
class GrowthConfig:
    """How and when a model grows.

    Attributes
    ----------
    extender, distributor : str or object
        Registry names (``clgrow list``) or instances: how new units are initialised, and where
        they go.
    extender_kwargs, distributor_kwargs : dict
        Keyword arguments for the methods named by ``extender`` / ``distributor``.
    neurons_per_experience : int, list of int or callable
        Units added per growth step; a list gives each growth step its own count, in the order the
        steps happen (the paper's CIFAR-100 schedule); or ``f(experience_index) -> int``.
    grow_from_experience : int
        First experience (0-based) at whose start the model grows.
    grow_every_epochs : int, optional
        Also grow every ``n`` epochs inside an experience (growth stages).
    max_hidden_size : int, optional
        Cap on every hidden layer's width; growth stops at the cap.
    max_params : int, optional
        Parameter budget shared by growth and pruning: a growth step adds only as many units as
        keep the model within it, priced at the dearest eligible layer's cost per unit (so
        units a prune removed are regrown).
    layers : list of int, optional
        Hidden layers allowed to grow (default: all).
    grow_head : bool
        Add head outputs when an experience brings labels beyond the head's size.
    regrow_pruned : bool
        At an experience's start, also add as many units as a prune removed there (within
        ``max_params`` and ``max_hidden_size``): pruned capacity is recycled as new units.
    carry_optimizer_state : bool
        Keep the optimizer state of old entries of grown tensors (zero-padded).
    disruption_probe : int
        Samples kept from each trained experience to measure every growth step's disruption of
        the experiences seen so far (accuracy and output KL right before and after; 0: off).
    isolation : {"auto", "freeze", "none"}
        Who trains the units: ``freeze`` gives each experience the units it gained (and the
        heads) and keeps every older unit computing what it computed; ``auto`` (the default) does
        so once the stream shows a second task label (task-incremental: forgetting 0 where the
        fixed network of the final size forgets 17 points, BENCHMARKS.md "Growth that pays") and
        nothing class-incrementally, where one head reads every unit and freezing old units costs
        the new classes 9–22 points of learning accuracy.
    """

    extender: str | Extender = field(default="swe", metadata={"help": "extender (registry name)"})
    distributor: str | Distributor = field(default="svod", metadata={"help": "distributor (registry name)"})
    extender_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "extender keyword arguments"})
    distributor_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "distributor keyword arguments"})
    neurons_per_experience: int | list[int] | Callable[[int], int] = setting(
        "growth",
        custom(
            _schedule_ok,
            "an integer >= 0, a non-empty list of them (one per growth step) or a callable experience -> int",
            parse=int,
            nargs="+",
            metavar="N",
        ),
        32,
        "units added per growth step (several: one count per step, in order)",
        aliases=("--neurons",),
    )
    grow_from_experience: int = setting(
        "growth", whole(0), 1, "first experience (0-based) that grows", aliases=("--grow-from",)
    )
    grow_every_epochs: int | None = setting(
        "growth", whole(optional=True), None, "also grow every N epochs inside an experience"
    )
    max_hidden_size: int | None = setting("growth", whole(optional=True), None, "cap on every hidden layer's width")
    max_params: int | None = setting(
        "growth",
        whole(optional=True),
        None,
        "parameter budget: growth adds only what keeps the model within it (pruning frees room)",
    )
    layers: list[int] | None = setting(
        "growth",
        custom(
            _layers_ok,
            "a non-empty list of hidden-layer indices >= 0, or absent (all layers)",
            parse=int,
            nargs="+",
            metavar="N",
        ),
        None,
        "hidden layers allowed to grow (absent: all)",
    )
    grow_head: bool = setting("growth", flag(), False, "add head outputs for labels beyond the head's size")
    regrow_pruned: bool = setting("growth", flag(), False, "also add as many units as the experience's prune removed")
    carry_optimizer_state: bool = setting(
        "growth", flag(), True, "keep the optimizer state of grown tensors' old entries"
    )
    disruption_probe: int = setting(
        "growth", whole(0), 200, "samples kept per trained experience to measure growth disruption (0: off)"
    )
    isolation: str = setting(
        "growth",
        one_of(lambda: ISOLATION),
        "auto",
        "freeze: each experience trains the units it gained (and the heads), older units keep what they "
        "compute; auto: freeze in a task-incremental stream (experiences of different task labels), none otherwise",
    )

    #: Fields that choose the growth method (the rest say how much and when).
    METHOD_FIELDS: typing.ClassVar[tuple[str, ...]] = (
        "extender",
        "distributor",
        "extender_kwargs",
        "distributor_kwargs",
    )

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of every setting, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    def validate(self, prefix: str = "", methods: bool = True) -> GrowthConfig:
        """Raise :class:`ConfigError` naming the first invalid field (``prefix`` + name); return ``self``.

        ``methods=False`` checks the schedule only (the method is chosen elsewhere, as in a run
        configuration whose ``growth`` names it).
        """

        def need(cond: bool, name: str, msg: str) -> None:
            if not cond:
                raise ConfigError(f"{prefix}{name}: {msg} (got {getattr(self, name)!r})")

        for name, declared in settings_of(type(self)).items():  # each setting by its declaration
            why = declared.check(getattr(self, name))
            if why:
                raise ConfigError(prefix + why)
        for name in ("extender_kwargs", "distributor_kwargs"):
            need(isinstance(getattr(self, name), Mapping), name, "must be a table of keyword arguments")
        if not methods:
            return self
        for name, registry in (("extender", extenders), ("distributor", distributors)):
            v = getattr(self, name)
            kwargs = getattr(self, name + "_kwargs")
            if isinstance(v, str):
                need(v in registry, name, f"must be an instance or one of {', '.join(registry)}")
                try:  # the declaration checks names, types and ranges; nothing is built
                    registry.params(v).build(kwargs)
                except ConfigError as err:
                    raise ConfigError(f"{prefix}{name}_kwargs: {err}") from None
            else:
                from clgrow.methods.distributor import Distributor  # an instance exists: torch is imported
                from clgrow.methods.extender import Extender

                need(
                    isinstance(v, Extender if name == "extender" else Distributor),
                    name,
                    f"must be an instance or one of {', '.join(registry)}",
                )
                if kwargs:
                    raise ConfigError(f"{prefix}{name}_kwargs: only apply to a {name} given by name, not an instance")
        return self

    def build(self) -> tuple[Extender, Distributor]:
        """The extender and distributor instances these settings describe (each built once here)."""
        out = []
        for name, registry in (("extender", extenders), ("distributor", distributors)):
            v, kwargs = getattr(self, name), getattr(self, name + "_kwargs")
            try:
                out.append(registry.build(v, kwargs))
            except ConfigError as err:
                raise ConfigError(f"{name}_kwargs for {v}: {err}") from None
        return out[0], out[1]

    @classmethod
    def settings(cls) -> dict[str, Setting]:
        """The declared settings (every field but the method's): what flags, the reference and the
        checks are made from."""
        return settings_of(cls)

    @property
    def most_units(self) -> int | None:
        """The largest count of one growth step (``None`` for a callable schedule)."""
        k = self.neurons_per_experience
        return None if callable(k) else max(k) if isinstance(k, list) else int(k)

    def isolates(self, task_incremental: bool) -> bool:
        """Whether units are owned by the experience that gained them: always with
        ``isolation="freeze"``, never with ``"none"``, and with ``"auto"`` in a task-incremental
        stream (the one place ``auto`` is decided: the run's checks and ``GrowPlugin`` ask here)."""
        return self.isolation == "freeze" or (self.isolation == "auto" and task_incremental)

    def step_index(self, experience: int, epoch: int, train_epochs: int) -> int:
        """How many growth steps come before the one at ``(experience, epoch)`` in a stream whose
        experiences train ``train_epochs`` epochs each (one at the start of every experience from
        ``grow_from_experience``, one every ``grow_every_epochs`` epochs inside each)."""
        every = self.grow_every_epochs or 0

        def staged(epochs: int) -> int:  # steps at epochs 1 .. epochs - 1 of an experience
            return (epochs - 1) // every if every and epochs > 0 else 0

        g = self.grow_from_experience
        before = max(0, experience - g) + experience * staged(train_epochs)
        if epoch > 0:
            before += int(experience >= g) + staged(epoch)
        return before

    def units_for(self, experience: int, step: int | None = None) -> int:
        """Units to add at ``experience`` (before any cap); ``step``: the growth step's index,
        which a list of counts is read at (:meth:`step_index`)."""
        k = self.neurons_per_experience
        if isinstance(k, list):
            if step is None or not 0 <= step < len(k):
                raise ConfigError(
                    f"neurons_per_experience lists {len(k)} counts, one per growth step; step {step} "
                    f"(at experience {experience}) has none"
                )
            return int(k[step])
        value = k(experience) if callable(k) else k
        if not _is_int(value) or value < 0:
            raise ConfigError(f"neurons_per_experience({experience}) returned {value!r}; need an int >= 0")
        return int(value)

    def merged(self, **overrides: Any) -> GrowthConfig:
        """A copy with ``overrides`` applied; keyword-argument tables are merged, not replaced."""
        unknown = sorted(set(overrides) - set(self.field_names()))
        if unknown:
            raise ConfigError(f"unknown growth setting(s) {', '.join(unknown)}; known: {', '.join(self.field_names())}")
        for name in ("extender_kwargs", "distributor_kwargs"):
            if name in overrides and isinstance(overrides[name], Mapping):
                overrides[name] = {**getattr(self, name), **overrides[name]}
        return dataclasses.replace(self, **overrides)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "growth") -> GrowthConfig:
        """Build from plain data (a TOML table), refusing unknown fields by name (call :meth:`validate`)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: must be a table of growth settings (got {data!r})")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(cls.field_names())}")
        d = dict(data)
        if isinstance(d.get("layers"), tuple):
            d["layers"] = list(d["layers"])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON/TOML friendly); instances are written as their ``repr``."""
        out = {f: getattr(self, f) for f in self.field_names()}
        for name in ("extender", "distributor", "neurons_per_experience"):
            if isinstance(out[name], list):
                out[name] = list(out[name])
            elif not isinstance(out[name], (str, int)):
                out[name] = repr(out[name])
        out["extender_kwargs"] = dict(self.extender_kwargs)
        out["distributor_kwargs"] = dict(self.distributor_kwargs)
        out["layers"] = None if self.layers is None else list(self.layers)
        return out


#: Named growth methods, as the method fields of a GrowthConfig (``None``: no growth).
GROWTH_PRESETS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "swe-svod": {"extender": "swe", "distributor": "svod"},
    "swe-svod-paper": {
        "extender": "swe",
        "distributor": "svod",
        "extender_kwargs": PAPER_SWE.changes(),
        "distributor_kwargs": PAPER_SVOD.changes(),
    },
    "swe-uniform": {"extender": "swe", "distributor": "uniform"},
    "swe-proportional": {"extender": "swe", "distributor": "proportional"},
    "random-svod": {"extender": "random", "distributor": "svod"},
    "random-uniform": {"extender": "random", "distributor": "uniform"},
    "net2net-svod": {"extender": "net2net", "distributor": "svod"},
    "net2net-uniform": {"extender": "net2net", "distributor": "uniform"},
    "gradmax-svod": {"extender": "gradmax", "distributor": "svod"},
    "gradmax-uniform": {"extender": "gradmax", "distributor": "uniform"},
}


def known_methods(kind: str) -> list[str]:
    """Names of the ``kind`` methods (``extender``, ``distributor``, ``plasticity``, ``strategy``),
    sorted: the built-in ones, those of installed packages' entry points and any registered since."""
    return list(REGISTRIES[kind])


def growth_methods(growth: str) -> dict[str, Any] | None:
    """The method fields a growth name stands for (``None``: no growth), without importing torch.

    Raises :class:`ConfigError` for a name that is neither a preset nor ``EXTENDER+DISTRIBUTOR``
    of known methods.
    """
    if not isinstance(growth, str):
        raise ConfigError(f"growth must be a preset name or 'EXTENDER+DISTRIBUTOR', got {growth!r}")
    extenders, distributors = known_methods("extender"), known_methods("distributor")
    if growth in GROWTH_PRESETS:
        method = GROWTH_PRESETS[growth]
        return None if method is None else {k: (dict(v) if isinstance(v, dict) else v) for k, v in method.items()}
    if "+" in growth:
        ext, dist = (s.strip() for s in growth.split("+", 1))
        if ext not in extenders:
            raise ConfigError(f"unknown extender {ext!r} in growth {growth!r}; known: {', '.join(extenders)}")
        if dist not in distributors:
            raise ConfigError(f"unknown distributor {dist!r} in growth {growth!r}; known: {', '.join(distributors)}")
        return {"extender": ext, "distributor": dist}
    raise ConfigError(
        f"unknown growth {growth!r}; presets: {', '.join(GROWTH_PRESETS)}, or EXTENDER+DISTRIBUTOR with "
        f"extenders {', '.join(extenders)} and distributors {', '.join(distributors)}"
    )


def parse_growth(
    growth: str | GrowthConfig | None, base: GrowthConfig | None = None, **overrides: Any
) -> GrowthConfig | None:
    """Resolve a growth method to its settings (``None``: no growth).

    Parameters
    ----------
    growth : str or GrowthConfig or None
        A name of ``GROWTH_PRESETS``, ``"EXTENDER+DISTRIBUTOR"``, a config, or ``None``.
    base : GrowthConfig, optional
        Settings the method is applied onto (schedule, cap, ...; its keyword-argument tables
        override the preset's).
    **overrides
        Further :class:`GrowthConfig` fields.
    """
    if growth is None:
        return None
    if isinstance(growth, GrowthConfig):
        return growth.merged(**overrides).validate()
    return growth_from_method(growth_methods(growth), base, **overrides)


def growth_from_method(
    method: Mapping[str, Any] | None, base: GrowthConfig | None = None, **overrides: Any
) -> GrowthConfig | None:
    """:func:`parse_growth` for method fields already looked up (:func:`growth_methods`)."""
    if method is None:
        return None
    cfg = GrowthConfig(**method)
    if base is not None:
        own = {f: getattr(base, f) for f in GrowthConfig.field_names() if f not in ("extender", "distributor")}
        cfg = cfg.merged(**own)
    return cfg.merged(**overrides).validate()


# ---------------------------------------------------------------- the parameter budget
def over_budget(model: Any, max_params: int | None) -> str | None:
    """Why ``model`` cannot grow under ``max_params`` (it already has more), or ``None``; callers
    name the setting as they spell it."""
    used = sum(p.numel() for p in model.parameters())
    if max_params is not None and used > max_params:
        return f"{max_params} is below the model's {used} parameters: nothing could grow"
    return None


def units_under_budget(model: Growable, layers: Sequence[int], max_params: int) -> int:
    """How many units can be added to ``layers`` however a distributor splits them, keeping the
    model's parameters at most ``max_params``.

    ``s_i`` units in layer ``i`` cost ``Σ s_i·c_i`` (:func:`unit_params`) plus ``r·s_i·s_j`` for
    each eligible pair where ``j`` reads ``i`` (the weights between new units, ``r`` per pair); over
    every split of ``k`` units that is at most ``k·max c + max r·k²/4`` (the pairs form a chain).
    """
    if not layers:
        return 0
    from clgrow.methods.grow import unit_costs  # torch: this module is read by checks without it

    room = max_params - sum(p.numel() for p in model.parameters())
    c, r = unit_costs(model, layers)
    k = max(0, room // c)
    if r and k:  # the root of r·k²/4 + c·k = room, then down to the first k that fits
        k = min(k, int(2 * (math.sqrt(c * c + r * room) - c) / r) + 1)
    while k > 0 and k * c + (r * k * k) // 4 + (1 if (r * k * k) % 4 else 0) > room:
        k -= 1
    return k
