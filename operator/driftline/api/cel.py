"""CEL evaluation for `x-kubernetes-validations`, as the Kubernetes API server does it.

The engine is the `common-expression-language` package (CEL in Rust). Kubernetes adds
library functions to standard CEL; the ones our rules use are registered here so that a
rule which passes here also passes in a real cluster, and the other way round.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import cel as cel_engine


class CelRuleError(Exception):
    """A rule that does not compile, or that fails while evaluating."""


def _is_sorted(values: list[Any]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(values))


def _index_of(values: list[Any], item: Any) -> int:
    return values.index(item) if item in values else -1


def _last_index_of(values: list[Any], item: Any) -> int:
    return len(values) - 1 - values[::-1].index(item) if item in values else -1


# Kubernetes' CEL list library (k8s.io/apiserver/pkg/cel/library/lists.go): same names, same meaning.
KUBERNETES_LIST_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isSorted": _is_sorted,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "sum": sum,
}


@lru_cache(maxsize=1024)
def compile_rule(rule: str) -> Any:
    """Compile once; raises CelRuleError with the parser's message on a syntax error."""
    try:
        return cel_engine.compile(rule)
    except ValueError as error:
        raise CelRuleError(f"compilation failed: {error}") from error


def uses_old_self(rule: str) -> bool:
    """Transition rules (those naming oldSelf) run only on updates, as in Kubernetes."""
    return "oldSelf" in compile_rule(rule).variables()


def evaluate_rule(rule: str, self_value: Any, old_self: Any = None) -> bool:
    """Evaluate one rule against the value at its schema node; True when it holds."""
    program = compile_rule(rule)
    context = cel_engine.Context()
    for name, function in KUBERNETES_LIST_FUNCTIONS.items():
        context.add_function(name, function)
    context.add_variable("self", self_value)
    if old_self is not None:
        context.add_variable("oldSelf", old_self)
    try:
        result = program.execute(context)
    except KeyError as error:
        raise CelRuleError(f"no such key: {error.args[0]}") from error
    except (RuntimeError, TypeError, ValueError) as error:
        raise CelRuleError(str(error)) from error
    if not isinstance(result, bool):
        raise CelRuleError(f"rule returned {type(result).__name__}, not bool")
    return result
