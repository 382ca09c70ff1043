"""N+1 detection for the whole test suite, with django-zeal (config/settings.py wires it in).

Every request a test makes runs inside `zeal_context()`: a lazy load repeated in a
loop (`message.sent_by` for each message, `thread.messages.all()` for each thread)
raises `zeal.NPlusOneError`, which the test client re-raises, so the test fails at
the line that loads. That covers every optimized variant, every page and the API.
The variants a lesson orders before `optimized` (`naive`, and tiers such as the
sitemap's `defer` trap) may show an N+1 on purpose: they alone run under
`zeal_ignore()`; `optimized` and the tiers beyond it are checked.
tests/lab/test_nplusone.py checks that the detector catches each naive variant
whose lesson is an N+1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.urls import Resolver404, resolve
from zeal import zeal_context, zeal_ignore

from lab.lessons import PRACTICE_VARIANT, get_lesson

_strict = ContextVar("nplusone_strict", default=False)


@contextmanager
def strict() -> Iterator[None]:
    """No exemption inside this block: the naive variants are checked too."""
    token = _strict.set(True)
    try:
        yield
    finally:
        _strict.reset(token)


def is_exempt_variant(path: str) -> bool:
    """A lesson variant ordered before `optimized`: the lesson's mistake, kept on purpose."""
    if _strict.get():
        return False
    try:
        match = resolve(path)
    except Resolver404:
        return False
    lesson = get_lesson(match.kwargs.get("slug", "")) if match.url_name == "variant" else None
    if lesson is None or match.kwargs["variant"] not in lesson.variant_names:
        return False
    if match.kwargs["variant"] == PRACTICE_VARIANT:
        return True  # an attendee's exercise: the grader reports its N+1 with its line
    names = lesson.variant_names
    return names.index(match.kwargs["variant"]) < names.index("optimized")


class NPlusOneMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        guard = zeal_ignore() if is_exempt_variant(request.path_info) else zeal_context()
        with guard:
            return self.get_response(request)
