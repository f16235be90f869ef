"""How a route calls an operation: on the app's engine, its errors answered as 4xx (or
502) with their reasons, never a 500. Each part of the API names its errors (``caller``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from fastapi import HTTPException, Request
from sqlalchemy import Engine


def engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


class Rule(NamedTuple):
    """Errors of these types are this HTTP status, with ``detail(error)``."""

    errors: type[Exception] | tuple[type[Exception], ...]
    status: int
    detail: Callable[[Any], Any] = str


def listed(attr: str = "errors") -> Callable[[Any], dict[str, Any]]:
    """The detail of an error that lists its problems in ``attr``: every one of them."""
    return lambda exc: {"errors": getattr(exc, attr)}


def caller(*rules: Rule) -> Callable[..., Any]:
    """``call(fn, *args, **kw)``: what ``fn`` returns; an error of a rule (the first that
    matches, so a subclass goes before its base) raised as that rule's HTTPException."""

    def call(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except Exception as exc:
            for rule in rules:
                if isinstance(exc, rule.errors):
                    raise HTTPException(rule.status, rule.detail(exc)) from None
            raise

    return call
