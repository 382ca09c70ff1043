"""N+1 detection for the whole test suite, with django-zeal (config/settings.py wires it in).

Every request a test makes runs inside `zeal_context()`: a lazy load repeated in a
loop (`message.sent_by` for each message, `thread.messages.all()` for each thread)
raises `zeal.NPlusOneError`, which the test client re-raises, so the test fails at
the line that loads. That covers every optimized variant, every page and the API.
A lesson's `naive` variant shows an N+1 on purpose: it alone runs under
`zeal_ignore()`. tests/lab/test_nplusone.py checks that the detector catches each
naive variant whose lesson is an N+1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.urls import Resolver404, resolve
from zeal import zeal_context, zeal_ignore

# The variant that is allowed to be slow: the lesson's mistake, kept on purpose.
EXEMPT_VARIANT = "naive"
_strict = ContextVar("nplusone_strict", default=False)


@contextmanager
def strict() -> Iterator[None]:
    """No exemption inside this block: the naive variants are checked too."""
    token = _strict.set(True)
    try:
        yield
    finally:
        _strict.reset(token)


def is_naive_variant(path: str) -> bool:
    if _strict.get():
        return False
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return match.url_name == "variant" and match.kwargs.get("variant") == EXEMPT_VARIANT


class NPlusOneMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        guard = zeal_ignore() if is_naive_variant(request.path_info) else zeal_context()
        with guard:
            return self.get_response(request)
