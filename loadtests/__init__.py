"""Load tests generated from the lesson registry (`/api/lessons/`).

- `locustfile.py`: one Locust user class per lesson, one task per variant, request
  names `<variant>:/lessons/<slug>/` so the rows of one lesson sit side by side.
- `run.py` (`make loadtest`, `make loadtest-connections`): starts a production-like
  gunicorn, runs each variant alone in turn, writes Locust's CSV and HTML per run
  under `reports/<timestamp>/`, then one comparison table (Locust has none).

This package talks HTTP only: it never imports Django, so Locust workers stay light.
"""
