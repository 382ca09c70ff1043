"""Operations tooling around the lab: what runs, seeds, measures and documents it.

- `ops.services`: the dev services runner (embedded PostgreSQL and Redis when no
  DATABASE_URL / REDIS_URL is given); config/settings.py reads its default URLs.
- `ops.procfile`: the one process list that `make demo` (honcho) and compose run.
- `ops.bench`: `make bench`, seeding, `compare` and the load test into one results file.
- `manage.py workshop_guide`: docs/WORKSHOP.md from the registry and the results.

ops imports the lesson framework (lab/) and the apps; nothing in lab/ or the apps
imports ops, except the settings module for the default service URLs.
"""
