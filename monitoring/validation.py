"""Declarative checks of a public function's arguments, in the spirit of scikit-learn's ``validate_params``.

A public entry point states what each argument accepts::

    @validate_params(n_bins=Interval(int, 2, None), task=Options("classification", "regression"),
                     frame=InstanceOf(pd.DataFrame))
    def segment_metrics(frame, features, *, task, n_bins=4): ...

and a call with anything else raises ``ValueError`` naming the argument, what it accepts and what
it got (``n_bins must be an integer >= 2; got 1``), before the body runs. Arguments not named
are not checked; ``None`` passes only where a constraint is wrapped in :class:`Nullable`.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


class Constraint(ABC):
    """One rule an argument must follow; :meth:`holds` tests a value, :meth:`describe` says the rule."""

    @abstractmethod
    def holds(self, value: Any) -> bool:
        """Whether ``value`` follows the rule."""

    @abstractmethod
    def describe(self) -> str:
        """The rule in words, to follow "must be" in a message."""


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral | np.integer) and not isinstance(value, bool | np.bool_)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real | np.floating | np.integer) and not isinstance(value, bool | np.bool_)


@dataclass(frozen=True)
class Interval(Constraint):
    """A number of ``kind`` (``int`` or ``float``; a float interval takes integers too) between two bounds.

    ``closed`` says which bounds belong to the interval: ``"both"``, ``"left"``, ``"right"`` or
    ``"neither"``. A bound of None is no bound. Floats must be finite.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def holds(self, value: Any) -> bool:
        if not (_is_integer(value) if self.kind is int else _is_real(value)):
            return False
        if not math.isfinite(float(value)):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (value < self.low if left else value <= self.low):
            return False
        return not (self.high is not None and (value > self.high if right else value >= self.high))

    def describe(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            brackets = {"both": "[]", "left": "[)", "right": "(]", "neither": "()"}[self.closed]
            return f"{noun} in {brackets[0]}{self.low:g}, {self.high:g}{brackets[1]}"
        if self.low is not None:
            return f"{noun} {'>=' if self.closed in ('both', 'left') else '>'} {self.low:g}"
        if self.high is not None:
            return f"{noun} {'<=' if self.closed in ('both', 'right') else '<'} {self.high:g}"
        return f"{noun}" + (" (finite)" if self.kind is not int else "")


@dataclass(frozen=True, init=False)
class Options(Constraint):
    """One of a few values (compared with ``==``)."""

    values: tuple

    def __init__(self, *values: Any):
        object.__setattr__(self, "values", tuple(values))

    def holds(self, value: Any) -> bool:
        for option in self.values:
            if isinstance(value, bool) != isinstance(option, bool):  # True is not the option 1
                continue
            try:
                if bool(value == option):
                    return True
            except (TypeError, ValueError):  # an array compared with a value
                continue
        return False

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True, init=False)
class InstanceOf(Constraint):
    """An instance of one of the given types."""

    types: tuple[type, ...]

    def __init__(self, *types: type):
        object.__setattr__(self, "types", tuple(types))

    def holds(self, value: Any) -> bool:
        return isinstance(value, self.types) and not (bool not in self.types and isinstance(value, bool))

    def describe(self) -> str:
        names = [t.__name__ for t in self.types]
        return ("a " if len(names) == 1 else "one of ") + " or ".join(names)


@dataclass(frozen=True)
class Nullable(Constraint):
    """``None``, or a value the wrapped constraint accepts."""

    inner: Constraint

    def holds(self, value: Any) -> bool:
        return value is None or self.inner.holds(value)

    def describe(self) -> str:
        return f"{self.inner.describe()} or None"


def check_argument(name: str, value: Any, constraint: Constraint) -> None:
    """Raise ``ValueError`` unless ``constraint`` holds for ``value``, naming ``name``, the rule and the value."""
    if not constraint.holds(value):
        shown = repr(value) if not hasattr(value, "shape") else f"{type(value).__name__} of shape {value.shape}"
        raise ValueError(f"{name} must be {constraint.describe()}; got {shown}")


def validate_params(**constraints: Constraint) -> Callable:
    """Decorate a function so that the named arguments are checked, as given or defaulted, before it runs.

    Parameters
    ----------
    **constraints : Constraint
        One per argument name of the decorated function.

    Raises
    ------
    TypeError
        At decoration time, for a name the function has no parameter of.
    """

    def decorate(function: Callable) -> Callable:
        signature = inspect.signature(function)
        unknown = sorted(set(constraints) - set(signature.parameters))
        if unknown:
            raise TypeError(f"{function.__qualname__} has no parameter(s) {unknown} to validate")

        @functools.wraps(function)
        def checked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, constraint in constraints.items():
                check_argument(name, bound.arguments[name], constraint)
            return function(*args, **kwargs)

        checked.__wrapped_constraints__ = dict(constraints)
        return checked

    return decorate
