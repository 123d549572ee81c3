"""A tiny, safe condition language for the rules table, with three-valued (Kleene) logic.

Conditions are Python-like expressions over named facts, e.g.
``neuro_deficit == True and posterior_wall_bulge_mm >= retropulsion_mm``. Allowed: names, numbers,
strings, ``True``/``False``/``None``, tuples/lists (for ``in``), ``and``/``or``/``not``, comparisons
(``== != < <= > >= in not in``) and ``is``/``is not`` against ``True``/``False``/``None``.

A fact whose value is ``None`` is *unknown*. Comparisons with an unknown value are unknown, and
``and``/``or``/``not`` follow Kleene logic (``False and unknown`` is False, ``True or unknown`` is
True). ``x is True`` / ``x is not True`` / ``x is None`` test the raw value and are never unknown —
use them to say "not known to be true". Nothing else (calls, attributes, arithmetic) is accepted.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["UNKNOWN", "Condition", "ConditionError"]


class _Unknown:
    _inst = None

    def __new__(cls):
        if cls._inst is None:
            cls._inst = super().__new__(cls)
        return cls._inst

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:  # pragma: no cover - guard against accidental truthiness
        raise TypeError("UNKNOWN has no truth value")


UNKNOWN = _Unknown()


class ConditionError(ValueError):
    """A condition that is not in the allowed language or names an unknown fact."""


_CMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
        ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}


def _k_and(vals):
    out = True
    for v in vals:
        if v is False:
            return False
        if v is UNKNOWN:
            out = UNKNOWN
    return out


def _k_or(vals):
    out = False
    for v in vals:
        if v is True:
            return True
        if v is UNKNOWN:
            out = UNKNOWN
    return out


@dataclass(frozen=True)
class Condition:
    """A parsed condition; ``names`` are the facts/parameters it reads."""
    text: str
    tree: ast.Expression
    names: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> "Condition":
        try:
            tree = ast.parse(str(text), mode="eval")
        except SyntaxError as exc:
            raise ConditionError(f"condition {text!r} is not valid: {exc.msg}") from None
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif not isinstance(node, (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not,
                                       ast.USub, ast.Compare, ast.Constant, ast.Tuple, ast.List, ast.Load,
                                       ast.Is, ast.IsNot, *_CMP)):
                raise ConditionError(f"condition {text!r}: {type(node).__name__} is not allowed")
            if isinstance(node, ast.UnaryOp) and not isinstance(node.op, (ast.Not, ast.USub)):
                raise ConditionError(f"condition {text!r}: operator not allowed")
            if isinstance(node, ast.Compare):
                for op, right in zip(node.ops, node.comparators):
                    if isinstance(op, (ast.Is, ast.IsNot)) and not (
                            isinstance(right, ast.Constant) and right.value in (True, False, None)):
                        raise ConditionError(f"condition {text!r}: 'is' only against True/False/None")
        return cls(text=str(text), tree=tree, names=frozenset(names))

    def evaluate(self, facts: Mapping[str, Any]) -> Any:
        """True, False or :data:`UNKNOWN`."""
        missing = self.names - set(facts)
        if missing:
            raise ConditionError(f"condition {self.text!r} names unknown fact(s): {', '.join(sorted(missing))}")
        return _truth(self._eval(self.tree.body, facts))

    def unknown_names(self, facts: Mapping[str, Any]) -> list[str]:
        """Facts read by this condition whose value is unknown (None)."""
        return sorted(n for n in self.names if facts.get(n) is None)

    def _eval(self, node: ast.AST, facts: Mapping[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            v = facts[node.id]
            return UNKNOWN if v is None else v
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(self._eval(e, facts) for e in node.elts)
        if isinstance(node, ast.BoolOp):
            vals = (_truth(self._eval(v, facts)) for v in node.values)
            return _k_and(vals) if isinstance(node.op, ast.And) else _k_or(vals)
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, facts)
            if isinstance(node.op, ast.USub):
                return UNKNOWN if v is UNKNOWN else -v
            v = _truth(v)
            return UNKNOWN if v is UNKNOWN else (not v)
        if isinstance(node, ast.Compare):
            results = []
            left_node, left = node.left, None
            left = self._eval(left_node, facts)
            for op, right_node in zip(node.ops, node.comparators):
                if isinstance(op, (ast.Is, ast.IsNot)):
                    raw = None if left is UNKNOWN else left
                    target = right_node.value  # type: ignore[attr-defined]
                    same = (raw is None) if target is None else (raw is not None and bool(raw == target)
                                                                 and isinstance(raw, bool))
                    results.append(same if isinstance(op, ast.Is) else not same)
                    left = self._eval(right_node, facts)
                    continue
                right = self._eval(right_node, facts)
                if left is UNKNOWN or right is UNKNOWN or (isinstance(right, tuple) and UNKNOWN in right):
                    results.append(UNKNOWN)
                else:
                    try:
                        results.append(bool(_CMP[type(op)](left, right)))
                    except TypeError:
                        raise ConditionError(f"condition {self.text!r}: cannot compare {left!r} and {right!r}") from None
                left = right
            return _k_and(results)
        raise ConditionError(f"condition {self.text!r}: {type(node).__name__} is not allowed")


def _truth(v: Any) -> Any:
    if v is UNKNOWN or v is True or v is False:
        return v
    if isinstance(v, tuple):
        raise ConditionError("a tuple is not a truth value")
    return bool(v)
