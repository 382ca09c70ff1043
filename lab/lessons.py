"""The lesson contract: one declaration per lesson module, collected in a registry.

The catalogue, the lesson pages, `/api/lessons/`, `manage.py compare`, the Locust
scenarios and the contract tests all read this registry, so adding a lesson is
adding one module (`<app>/lessons/<slug_with_underscores>.py`) and its tests.

The lesson's story has one home, its module docstring (`Lesson(docstring=__doc__)`):
a first line, then the three lines

    Slow: what is slow (a line may continue on the following indented or plain lines)
    Why: why it is slow
    Fix: what fixes it

which `Story.parse` reads; a lesson without all three does not register. What tools
need to know about a lesson (load-test parameters, a scenario of its own) is declared
by the lesson too (`Lesson(load=LoadTest(...))`), so no tool names a slug.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from django.urls import reverse

Kind = Literal["read", "write"]
Renders = Literal["json", "html"]
Scenario = Literal["", "stampede", "connections"]

STORY_LABELS = ("Slow", "Why", "Fix")
# Practice mode's variant: an attendee's own fix, added in demo mode only (lab/exercises.py).
PRACTICE_VARIANT = "yours"
_LABEL = re.compile(r"^(?P<label>Slow|Why|Fix):\s*(?P<text>.*)$")


@dataclass(frozen=True)
class Story:
    """What is slow, why it is slow, what fixes it: parsed from the module docstring."""

    slow: str
    why: str
    fix: str

    @classmethod
    def parse(cls, docstring: str | None) -> Story:
        """The `Slow:`, `Why:` and `Fix:` paragraphs; a line continues its label until a
        blank line or the next label. A missing or repeated label is a ValueError."""
        found: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in inspect.cleandoc(docstring or "").splitlines():
            match = _LABEL.match(line.strip())
            if match:
                if match["label"] in found:
                    raise ValueError(f"the docstring has two {match['label']!r} lines")
                current = found[match["label"]] = [match["text"]]
            elif not line.strip():
                current = None
            elif current is not None:
                current.append(line.strip())
        missing = [label for label in STORY_LABELS if not " ".join(found.get(label, [])).strip()]
        if missing:
            raise ValueError(f"the docstring has no {', '.join(missing)} line(s)")
        return cls(*(" ".join(found[label]).strip() for label in STORY_LABELS))

    def as_dict(self) -> dict[str, str]:
        return {"slow": self.slow, "why": self.why, "fix": self.fix}


@dataclass(frozen=True)
class LoadTest:
    """What the load tools (loadtests/, through `/api/lessons/`) need to know about a lesson."""

    # Parameters sent under load instead of the example ones: a write lesson bounds its
    # body here, so a 30 s run adds thousands of rows, not hundreds of thousands.
    params: Mapping[str, str] = field(default_factory=dict)
    # A scenario of its own besides the per-variant runs: "stampede" (a cache entry
    # expiring under load; `make loadtest-stampede`) or "connections" (the server
    # restarted with each database-connection setting; `make loadtest-connections`).
    scenario: Scenario = ""
    # stampede: the setting (environment variable) that sets the entry's lifetime, the
    # URL (name) of the recomputation counters, and variant -> counter name.
    ttl_setting: str = ""
    counters_url: str = ""
    counters: Mapping[str, str] = field(default_factory=dict)
    # The variant the scenario drives and the parameters it sends (connections: a cheap
    # request shows the connection's own cost best).
    scenario_variant: str = "optimized"
    scenario_params: Mapping[str, str] = field(default_factory=dict)
    # What `make compose-check` proves with this lesson in the running stack: "swarm"
    # (a quick read for the Locust swarm), "worker" (a job the worker container
    # finishes), "mail" (mail that reaches Mailpit), "replica" (reads the stack's
    # streaming replica answers).
    stack_check: str = ""
    # `make silk-overhead` measures this lesson's naive variant by default (the heaviest
    # naive read: what a workshop clicks first with Silk recording).
    silk_overhead: bool = False
    # The async track: the load test runs this lesson's variants against the ASGI server
    # (gunicorn + uvicorn-worker, config/gunicorn_asgi.py) as well as the sync one, at
    # the same worker count, and the report puts the rows side by side.
    asgi: bool = False

    def as_dict(self) -> dict[str, Any]:
        counters_url = reverse(self.counters_url) if self.counters_url else ""
        return {
            "params": {key: str(value) for key, value in self.params.items()},
            "scenario": self.scenario,
            "ttl_setting": self.ttl_setting,
            "counters_url": counters_url,
            "counters": dict(self.counters),
            "scenario_variant": self.scenario_variant,
            "scenario_params": {key: str(value) for key, value in self.scenario_params.items()},
            "stack_check": self.stack_check,
            "silk_overhead": self.silk_overhead,
            "asgi": self.asgi,
        }


@dataclass(frozen=True)
class Variant:
    """One way of doing the same thing: `naive`, `optimized`, or a named tier."""

    name: str
    view: Callable[..., Any]  # a Django view callable (`APIView.as_view()` or a function)
    summary: str = ""
    # Silk recording for this variant's requests in demo mode: None follows
    # lab.measure.silk_should_record; True records even measured requests (the
    # profiler lesson, weave/lessons/profiler_overhead.py); False never records.
    silk: bool | None = None
    # The code that makes this variant's difference when it does not live in the
    # lesson module's `<entity>_<action>_<variant>` functions (for example a
    # paginator in lab/pagination.py): functions or classes, shown on the lesson page.
    code: tuple[Callable[..., Any] | type, ...] = ()
    # A tier's own query budget (per request, at the contract's scales): the contract
    # tests hold it to it and to a flat count as the data doubles, as they hold
    # `optimized` to the lesson's `query_budget`. None: not checked (naive).
    query_budget: int | None = None


# Keys of a paginated payload that hold a link to the variant's own URL.
PAGE_LINKS = ("next", "previous")


def is_url(value: Any) -> bool:
    return isinstance(value, str) and "?" in value


@dataclass(frozen=True)
class Lesson:
    slug: str
    title: str
    app: str
    technique: str
    # The module's docstring (`docstring=__doc__`): the one home of the lesson's story,
    # read through `story` by the pages, `/api/lessons/`, the schema and the guide.
    docstring: str
    # Ordered: first `naive`; `optimized` is the fix to recommend.
    variants: tuple[Variant, ...]
    # The optimized variant's query budget (per request, at the contract's scales).
    query_budget: int
    # Builds a fresh data set at a scale (the number of things that grows) and
    # returns a context mapping (for example {"user": user}). The contract tests
    # call it at N, roll back, then call it at 2N.
    build_data: Callable[[int], Mapping[str, Any]]
    method: str = "GET"
    # Example URL parameters that work on seeded data, or a callable returning
    # them from the build_data context (tests) or from the seeded database (None).
    params: Mapping[str, str] | Callable[[Mapping[str, Any] | None], Mapping[str, str]] = field(
        default_factory=dict
    )
    kind: Kind = "read"
    renders: Renders = "json"
    auth: bool = False  # the variants need an authenticated user (context["user"])
    # Scales the contract tests use to prove growth: data at N, then 2N.
    scales: tuple[int, int] = (10, 20)
    # Main query for EXPLAIN on the lesson page: variant name -> callable returning
    # a QuerySet (or (sql, params)); filled in by lessons that have one.
    main_queries: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
    # For write lessons: a snapshot of the final state, compared across variants.
    final_state: Callable[[Mapping[str, Any]], Any] | None = None
    # The context for the seeded database (for example {"user": a seeded member}),
    # used by `manage.py compare`, the lesson page and `/api/lessons/`.
    demo_context: Callable[[], Mapping[str, Any]] | None = None
    # Maps a payload to what must be identical across variants (for example,
    # drop an estimated count that the lesson compares within a tolerance).
    normalize: Callable[[Any], Any] | None = None
    notes: str = ""
    # Payload keys compared within a relative tolerance instead of exactly (for
    # example {"count": 0.03} for an estimated count); `normalize` drops them.
    tolerances: Mapping[str, float] = field(default_factory=dict)
    # False for lessons about the cost of each query (counts, offsets, indexes,
    # profilers) rather than their number: the naive query count stays flat too.
    naive_grows: bool = True
    # What the load tools need to know (bounded bodies, a scenario of its own).
    load: LoadTest = field(default_factory=LoadTest)
    # Request headers every tool sends with each variant (tests, compare, Locust),
    # for lessons about the HTTP layer (for example `Accept-Encoding: gzip`).
    headers: Mapping[str, str] = field(default_factory=dict)
    # A repeat visit: measurements send back the validators each variant's previous
    # response carried (ETag -> If-None-Match, Last-Modified -> If-Modified-Since),
    # as a browser or a CDN does; a 304 is then a success. The contract tests make
    # the first visit (no validators), so payloads and budgets are the full path.
    revalidate: bool = False
    # A lesson about the browser's cache and compression (static files): its page has a
    # control that loads each variant twice in the visitor's own browser and shows the
    # bytes on the wire, Content-Encoding, Cache-Control and whether the second visit
    # made a request at all, which no server-side measurement can see.
    browser_visits: bool = False
    # A lesson whose point includes peak memory (an export, a big list): every
    # `compare` of it adds the tracemalloc pass, so published tables show peak KB.
    measures_memory: bool = False
    # A batched job's budget depends on how much work it did: given the optimized
    # variant's payload, the queries it may run (for example one DELETE per batch).
    # `budget_for` reads it; without it the budget is `query_budget` at any size.
    query_budget_for: Callable[[Any], int] | None = None

    def comparable(self, payload: Any) -> Any:
        """What must be identical across variants: page links compared by their query
        (each variant links to its own URL), then the lesson's own `normalize`. A bare
        cursor token (no `?`) is compared whole."""
        if isinstance(payload, dict):
            payload = {
                key: urlsplit(value).query if key in PAGE_LINKS and is_url(value) else value
                for key, value in payload.items()
            }
        return self.normalize(payload) if self.normalize else payload

    def budget_for(self, payload: Callable[[], Any]) -> int:
        """The optimized variant's budget for a call; `payload` (for example a probe's
        `payload` method) is read only for a batched job."""
        if self.query_budget_for is None:
            return self.query_budget
        return max(self.query_budget, self.query_budget_for(payload()))

    def __post_init__(self) -> None:
        try:
            self.story  # noqa: B018 (parsed now, so a lesson without its story fails to load)
        except ValueError as error:
            raise ValueError(f"{self.slug}: {error} (see lab/lessons.py)") from None
        names = [variant.name for variant in self.variants]
        if not names or names[0] != "naive" or "optimized" not in names:
            raise ValueError(
                f"{self.slug}: variants must start with 'naive' and include 'optimized'"
            )
        # /lessons/<slug>/compare/ is the live comparison; check/ and hint/ practice mode's.
        for reserved in ("compare", "check", "hint"):
            if reserved in names:
                raise ValueError(f"{self.slug}: {reserved!r} is reserved and cannot name a variant")
        if PRACTICE_VARIANT in names[:-1] or (
            names[-1] == PRACTICE_VARIANT and not getattr(self.variants[-1].view, "exercise", None)
        ):
            raise ValueError(f"{self.slug}: {PRACTICE_VARIANT!r} is practice mode's variant")
        if len(set(names)) != len(names):
            raise ValueError(f"{self.slug}: duplicate variant names {names}")
        unknown = {*self.load.counters, self.load.scenario_variant} - set(names)
        if unknown:
            raise ValueError(f"{self.slug}: load names unknown variants {sorted(unknown)}")

    @property
    def story(self) -> Story:
        return Story.parse(self.docstring)

    @property
    def variant_names(self) -> list[str]:
        return [variant.name for variant in self.variants]

    def variant(self, name: str) -> Variant | None:
        return next((variant for variant in self.variants if variant.name == name), None)

    def url(self, variant: str) -> str:
        return reverse("lab:variant", kwargs={"slug": self.slug, "variant": variant})

    def page_url(self) -> str:
        return reverse("lab:lesson", kwargs={"slug": self.slug})

    def example_params(self, context: Mapping[str, Any] | None = None) -> dict[str, str]:
        params = self.params(context) if callable(self.params) else self.params
        return {key: str(value) for key, value in params.items()}


_registry: dict[str, Lesson] = {}


def register(lesson: Lesson) -> Lesson:
    existing = _registry.get(lesson.slug)
    if existing is not None and existing is not lesson:
        raise ValueError(f"lesson slug {lesson.slug!r} is registered twice")
    _registry[lesson.slug] = lesson
    return lesson


def all_lessons() -> list[Lesson]:
    lessons = sorted(_registry.values(), key=lambda lesson: (lesson.app, lesson.slug))
    return [with_practice(lesson) for lesson in lessons]


def get_lesson(slug: str) -> Lesson | None:
    lesson = _registry.get(slug)
    return with_practice(lesson) if lesson is not None else None


def registered_lessons() -> list[Lesson]:
    """Every lesson as its module declared it: what documents generated from the
    registry list, whatever exercise files this checkout holds."""
    return sorted(_registry.values(), key=lambda lesson: (lesson.app, lesson.slug))


def registered_lesson(slug: str) -> Lesson | None:
    """The lesson as its module declared it, never with practice mode's `yours`."""
    return _registry.get(slug)


def with_practice(lesson: Lesson) -> Lesson:
    """In demo mode, a lesson whose exercise file exists gets the variant `yours`."""
    from lab.exercises import with_exercise

    return with_exercise(lesson)


def import_lesson_modules(package: str) -> None:
    """Import every module of an app's `lessons` package (each registers itself)."""
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__):
        importlib.import_module(f"{package}.{info.name}")
