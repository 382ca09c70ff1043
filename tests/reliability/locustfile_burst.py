"""A short Locust burst on every lesson's optimized variant, read from /api/lessons/.

Used by test_live_stack.py (headless, 127.0.0.1 only, bounded by --run-time).
"""

import random

from locust import HttpUser, constant, task


class OptimizedBurst(HttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        registry = self.client.get("/api/lessons/", name="registry").json()
        self.targets = [
            (variant["url"], variant["params"])
            for lesson in registry["lessons"]
            for variant in lesson["variants"]
            if variant["name"] == "optimized" and variant["method"] == "GET"
        ]

    @task
    def optimized(self) -> None:
        url, params = random.choice(self.targets)
        with self.client.get(
            url, params=params, name=f"optimized:{url}", catch_response=True
        ) as response:
            if response.status_code >= 400:
                response.failure(f"status {response.status_code}")
