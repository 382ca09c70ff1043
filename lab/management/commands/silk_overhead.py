"""`manage.py silk_overhead [slug/variant ...] [--rounds N] [--param key=value ...]`.

What Silk costs a request in demo mode: each variant is requested with Silk recording
and with `?silk=off`, alternating, through the whole middleware stack (in-process),
and the figures are read from the response's Server-Timing header, as a browser
would: `total`, the application's `db` queries and Silk's own metric. Run it in demo
mode (DJANGO_DEBUG=1, the default), where Silk is installed.
"""

from __future__ import annotations

import statistics

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test import Client

from lab.lessons import all_lessons, get_lesson
from lab.measure import parse_server_timing


def default_targets() -> list[str]:
    """The naive variant of each lesson that declares `load=LoadTest(silk_overhead=True)`."""
    return [f"{lesson.slug}/naive" for lesson in all_lessons() if lesson.load.silk_overhead]


class Command(BaseCommand):
    help = "Time variants with Silk recording and with ?silk=off, side by side."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "targets", nargs="*", help="slug/variant (default: the declared heaviest naive read)"
        )
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument("--param", action="append", default=[], help="key=value (repeat)")

    def handle(self, *, targets, rounds, param, **options) -> None:
        if "silk" not in settings.INSTALLED_APPS:
            raise CommandError("Silk is not installed: run in demo mode (DJANGO_DEBUG=1).")
        if rounds < 1:
            raise CommandError("--rounds must be at least 1.")
        extra = dict(item.split("=", 1) for item in param if "=" in item)
        self.stdout.write(HEADER)
        for target in targets or default_targets():
            lesson, variant = self.resolve(target)
            params = {**lesson.example_params(), **extra}
            samples = self.measure(lesson, variant, params, rounds)
            self.stdout.write(format_line(target, params, samples))

    @staticmethod
    def resolve(target: str):
        slug, _, variant = target.partition("/")
        lesson = get_lesson(slug)
        if lesson is None or lesson.variant(variant or "naive") is None:
            known = ", ".join(
                f"{item.slug}/{name}" for item in all_lessons() for name in item.variant_names
            )
            raise CommandError(f"No lesson variant {target!r}. Known: {known}.")
        if lesson.method != "GET" or lesson.auth:
            raise CommandError(f"{target}: only GET lessons without a user are measured here.")
        return lesson, variant or "naive"

    def measure(self, lesson, variant, params, rounds) -> dict[str, list[dict]]:
        client = Client(HTTP_HOST="127.0.0.1")
        headers = {"Accept": "application/json"} if lesson.renders == "json" else {}
        samples: dict[str, list[dict]] = {"on": [], "off": []}
        for index in range(rounds):
            for mode in ("on", "off"):
                query = {**params, **({"silk": "off"} if mode == "off" else {})}
                response = client.get(lesson.url(variant), query, headers=headers)
                if response.status_code >= 400:
                    raise CommandError(f"{lesson.url(variant)} answered {response.status_code}")
                samples[mode].append(parse_server_timing(response["Server-Timing"]))
                self.stderr.write(f"round {index + 1} silk {mode}: {response['Server-Timing']}")
        return samples


HEADER = (
    f"{'variant':<28} {'silk':>4} {'total ms':>10} {'db queries':>10} "
    f"{'silk ms':>9} {'silk queries':>12} {'x silk=off':>10}"
)


def median(samples: list[dict], metric: str, key: str) -> float:
    values = [float(sample.get(metric, {}).get(key, "0").split()[0]) for sample in samples]
    return statistics.median(values)


def format_line(target: str, params: dict, samples: dict[str, list[dict]]) -> str:
    off_total = median(samples["off"], "total", "dur")
    lines = []
    for mode in ("on", "off"):
        total = median(samples[mode], "total", "dur")
        lines.append(
            f"{target:<28} {mode:>4} {total:>10.1f} {median(samples[mode], 'db', 'desc'):>10.0f} "
            f"{median(samples[mode], 'silk', 'dur'):>9.1f} "
            f"{median(samples[mode], 'silk', 'desc'):>12.0f} {total / off_total:>9.2f}x"
        )
    shown = "&".join(f"{key}={value}" for key, value in params.items())
    rounds = len(samples["on"])
    return "\n".join(lines) + f"\n  ({shown}; medians of {rounds} round(s), Server-Timing)"
