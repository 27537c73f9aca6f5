"""A private PostgreSQL + PostGIS cluster that streetaudit starts for itself.

A user without a database server (or CI) gets one with `streetaudit db up`: the
system's PostgreSQL binaries run a cluster under `$STREETAUDIT_DATA_DIR/pg`,
listening only on 127.0.0.1 and a unix socket. initdb and pg_ctl refuse to run as
root, so a root process runs them as an unprivileged user instead.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from streetaudit.sql.errors import DatabaseSetupError

SUPERUSER = "streetaudit"
DATABASE = "streetaudit"
# Login roles the private cluster gives a password, and the ClusterState field holding it.
# The roles themselves (and their privileges) come from the migrations.
LOGIN_ROLES = {"streetaudit_reader": "reader_password", "streetaudit_rater": "rater_password"}
# Where server files go when the server's user cannot reach the data dir (e.g. under /root).
FALLBACK_ROOT = Path("/var/lib/streetaudit")
# Unix socket paths are limited to 107 bytes; longer data paths put the socket in /tmp.
_MAX_SOCKET_DIR = 80
# What the server answers while it starts, stops or replays WAL after a crashed backend
# (a connection accepted just as the postmaster resets is closed unanswered): the state
# passes, so a client waiting a little loses nothing.
_NOT_YET = (
    "starting up",
    "in recovery mode",
    "not yet accepting connections",
    "shutting down",
    "server closed the connection unexpectedly",
)
# Server log lines saying a server process died or the server had to reset itself.
_CRASH_MARKS = (
    "terminated by signal",
    "exited with exit code",
    "was terminated",
    "PANIC:",
    "out of memory",
    "could not resize shared memory",
    "terminating any other active server processes",
    "all server processes terminated",
    "database system was interrupted",
    "database system was not properly shut down",
)


def find_bindir(configured: Path | None = None) -> Path:
    """The directory holding initdb/pg_ctl: configured, then pg_config, then /usr/lib/postgresql."""
    candidates: list[Path] = []
    if configured:
        candidates.append(Path(configured))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in versions)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise DatabaseSetupError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them with "
        "`apt-get install postgresql-15 postgresql-15-postgis-3`, set STREETAUDIT_PG_BINDIR, "
        "or point STREETAUDIT_DATABASE_URL at an existing PostGIS server."
    )


def runuser() -> str:
    """util-linux's runuser lives in /usr/sbin, which a root PATH may lack (cron, CI)."""
    return shutil.which("runuser") or "/usr/sbin/runuser"


def postgis_available(bindir: Path) -> bool:
    """PostGIS ships a control file in the server's share directory."""
    pg_config = bindir / "pg_config"
    share = None
    if pg_config.exists():
        out = subprocess.run([pg_config, "--sharedir"], capture_output=True, text=True, check=False)
        share = Path(out.stdout.strip()) if out.returncode == 0 else None
    if share is None:
        version = bindir.parent.name
        share = Path(f"/usr/share/postgresql/{version}")
    return (share / "extension" / "postgis.control").exists()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass
class ClusterState:
    """What a client needs to reach the cluster; kept beside it in cluster.json (mode 600)."""

    pgdata: str
    port: int
    password: str
    socket_dir: str
    os_user: str | None
    reader_password: str = ""
    rater_password: str = ""

    def url(self, database: str = DATABASE, user: str = SUPERUSER, password: str | None = None) -> str:
        secret = self.password if password is None else password
        auth = f"{quote(user)}:{quote(secret)}@" if secret else f"{quote(user)}@"
        return f"postgresql://{auth}127.0.0.1:{self.port}/{quote(database)}"


class LocalCluster:
    """One private cluster rooted at `root` (the data dir); its server files live in `root/pg`."""

    def __init__(self, root: Path, bindir: Path | None = None, *, fast_unsafe: bool = False):
        self.root = Path(root).resolve()
        self._bindir = bindir
        # fsync off: for throwaway test clusters only, where durability buys nothing.
        self.fast_unsafe = fast_unsafe
        self.state_file = self.root / "cluster.json"

    # -- facts ---------------------------------------------------------------------------
    @property
    def bindir(self) -> Path:
        if self._bindir is None or not (Path(self._bindir) / "pg_ctl").exists():
            self._bindir = find_bindir(self._bindir)
        return Path(self._bindir)

    def state(self) -> ClusterState | None:
        if not self.state_file.exists():
            return None
        return ClusterState(**json.loads(self.state_file.read_text()))

    def initialised(self) -> bool:
        state = self.state()
        return state is not None and Path(state.pgdata, "PG_VERSION").exists()

    def running(self) -> bool:
        state = self.state()
        if state is None or not Path(state.pgdata, "PG_VERSION").exists():
            return False
        result = self._run(["pg_ctl", "status", "-D", state.pgdata], check=False)
        return result.returncode == 0

    def url(self, database: str = DATABASE) -> str:
        state = self.state()
        if state is None:
            raise DatabaseSetupError(f"no local database under {self.root}; run `streetaudit db up` first")
        return state.url(database)

    @property
    def server_log(self) -> Path | None:
        state = self.state()
        return None if state is None else Path(state.pgdata) / "server.log"

    def crash_report(self, limit: int = 60) -> list[str]:
        """The server log's lines about dead server processes and resets, each with the
        DETAIL line naming the statement that was running: a crash seen by clients only as
        "the database system is in recovery mode" is explained here, not in their errors."""
        log = self.server_log
        if log is None:
            return []
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            return []
        report: list[str] = []
        for number, line in enumerate(lines):
            if any(mark in line for mark in _CRASH_MARKS):
                report.append(line)
                following = lines[number + 1] if number + 1 < len(lines) else ""
                if "DETAIL:" in following:
                    report.append(following)
        return report[-limit:]

    def login_url(self, role: str, database: str = DATABASE) -> str:
        """URL of one of LOGIN_ROLES: what a less privileged process (the API) connects as."""
        state = self.state()
        if state is None:
            raise DatabaseSetupError(f"no local database under {self.root}")
        return state.url(database, user=role, password=getattr(state, LOGIN_ROLES[role]))

    def reader_url(self, database: str = DATABASE) -> str:
        return self.login_url("streetaudit_reader", database)

    def rater_url(self, database: str = DATABASE) -> str:
        """The login role of the raters' web page, which may only call the rating functions."""
        return self.login_url("streetaudit_rater", database)

    # -- lifecycle -----------------------------------------------------------------------
    def up(self) -> str:
        """Initialise once, start if stopped, create the database; returns its URL."""
        if not self.initialised():
            self.init()
        if not self.running():
            self.start()
        self._ensure_database()
        return self.url()

    def init(self) -> None:
        if not postgis_available(self.bindir):
            raise DatabaseSetupError(
                f"PostGIS is not installed for the PostgreSQL in {self.bindir}. Install it with "
                f"`apt-get install postgresql-{self.bindir.parent.name}-postgis-3` "
                "(or run `make demo`, which does so when it may)."
            )
        os_user = self._os_user()
        pgdata = self._pgdata_path(os_user)
        if pgdata.exists() and any(pgdata.iterdir()):
            raise DatabaseSetupError(
                f"{pgdata} exists but holds no streetaudit cluster state; move it away or "
                "set STREETAUDIT_DATA_DIR to another folder"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._give(pgdata, os_user)
        password = secrets.token_urlsafe(18)
        with tempfile.NamedTemporaryFile("w", delete=False, prefix="sa-pw-") as pw:
            pw.write(password + "\n")
        try:
            self._give(Path(pw.name), os_user)
            self._run(
                [
                    "initdb",
                    "-D",
                    str(pgdata),
                    "-U",
                    SUPERUSER,
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pw.name}",
                ],
                os_user=os_user,
            )
        finally:
            os.unlink(pw.name)
        socket_dir = pgdata if len(str(pgdata)) <= _MAX_SOCKET_DIR else self._short_socket_dir()
        with (pgdata / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude_if_exists = 'streetaudit.conf'\n")
        state = ClusterState(
            pgdata=str(pgdata),
            port=free_port(),
            password=password,
            socket_dir=str(socket_dir),
            os_user=os_user,
            reader_password=secrets.token_urlsafe(18),
            rater_password=secrets.token_urlsafe(18),
        )
        self._save(state)

    def start(self) -> None:
        state = self.state()
        if state is None:
            raise DatabaseSetupError(f"no local database under {self.root}; run `streetaudit db up`")
        if port_in_use(state.port):
            state.port = free_port()
            self._save(state)
        Path(state.socket_dir).mkdir(parents=True, exist_ok=True)
        self._give(Path(state.socket_dir), state.os_user)
        self._write_conf(state)
        log = Path(state.pgdata) / "server.log"
        result = self._run(
            ["pg_ctl", "start", "-w", "-t", "60", "-D", state.pgdata, "-l", str(log)],
            os_user=state.os_user,
            check=False,
        )
        if result.returncode != 0:
            tail = _tail(log)
            raise DatabaseSetupError(f"PostgreSQL did not start (see {log}):\n{tail}")

    def stop(self) -> bool:
        state = self.state()
        if state is None or not self.running():
            return False
        self._run(["pg_ctl", "stop", "-w", "-m", "fast", "-D", state.pgdata], os_user=state.os_user)
        return True

    def destroy(self) -> None:
        """Stop and delete the cluster (tests use this to leave nothing behind)."""
        state = self.state()
        self.stop()
        if state:
            pgdata = Path(state.pgdata)
            shutil.rmtree(pgdata, ignore_errors=True)
            if pgdata.parent.parent == FALLBACK_ROOT:
                shutil.rmtree(pgdata.parent, ignore_errors=True)
        self.state_file.unlink(missing_ok=True)

    # -- helpers -------------------------------------------------------------------------
    def _ensure_database(self) -> None:
        import psycopg

        state = self.state()
        assert state is not None
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg.connect(state.url("postgres"), autocommit=True, connect_timeout=5)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(DATABASE)))
            # The login roles are created by the migrations; give them the cluster's passwords
            # here so `db url --reader` (and the API) work on a private cluster.
            if not state.rater_password:  # a cluster made before the raters' role existed
                state.rater_password = secrets.token_urlsafe(18)
                self._save(state)
            for role, field in LOGIN_ROLES.items():
                conn.execute(
                    psycopg.sql.SQL(
                        "DO $$ BEGIN CREATE ROLE {} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
                    ).format(psycopg.sql.Identifier(role))
                )
                conn.execute(
                    psycopg.sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                        psycopg.sql.Identifier(role), psycopg.sql.Literal(getattr(state, field))
                    )
                )

    def _write_conf(self, state: ClusterState) -> None:
        lines = [
            "listen_addresses = '127.0.0.1'",
            f"port = {state.port}",
            f"unix_socket_directories = '{state.socket_dir}'",
            "max_connections = 200",
            "shared_buffers = '256MB'",
            "work_mem = '32MB'",
            "maintenance_work_mem = '256MB'",
            # City scale (README "Running a whole city"): SSD-class storage, bulk COPY into the
            # append-heavy tables without a checkpoint every few seconds, parallel index builds.
            "random_page_cost = 1.1",
            "effective_io_concurrency = 200",
            "max_wal_size = '4GB'",
            "checkpoint_timeout = '15min'",
            "max_parallel_maintenance_workers = 2",
            "autovacuum_naptime = '20s'",
        ]
        if self.fast_unsafe:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
            lines += [
                # A crashed backend makes the server replay WAL since the last checkpoint
                # before it takes connections again: keep that replay short.
                "checkpoint_timeout = '1min'",
                "max_wal_size = '512MB'",
                # Parallel queries' shared memory in files, not /dev/shm (64 MB in containers).
                "dynamic_shared_memory_type = mmap",
            ]
        conf = Path(state.pgdata) / "streetaudit.conf"
        conf.write_text("\n".join(lines) + "\n")
        self._give(conf, state.os_user)

    def _save(self, state: ClusterState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.__dict__, indent=2))
        tmp.chmod(0o600)
        tmp.replace(self.state_file)

    def _os_user(self) -> str | None:
        """None: run as ourselves. As root: an unprivileged account (postgres, else nobody)."""
        if os.geteuid() != 0:
            return None
        wanted = os.environ.get("STREETAUDIT_PG_OS_USER")
        for name in [wanted, "postgres", "nobody"]:
            if not name:
                continue
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
        raise DatabaseSetupError("running as root, but no unprivileged user to run PostgreSQL as")

    def _pgdata_path(self, os_user: str | None) -> Path:
        """root/pg, unless the server's user cannot reach it (say, under /root)."""
        wanted = self.root / "pg"
        if os_user is None or self._reachable(self.root, os_user):
            return wanted
        digest = hashlib.sha1(str(wanted).encode()).hexdigest()[:12]
        return FALLBACK_ROOT / digest / "pg"

    @staticmethod
    def _reachable(path: Path, os_user: str) -> bool:
        path.mkdir(parents=True, exist_ok=True)
        probe = subprocess.run([runuser(), "-u", os_user, "--", "test", "-x", str(path)], check=False)
        return probe.returncode == 0

    @staticmethod
    def _short_socket_dir() -> Path:
        return Path(tempfile.mkdtemp(prefix="sa-pg-"))

    @staticmethod
    def _give(path: Path, os_user: str | None) -> None:
        if os_user is None:
            return
        entry = pwd.getpwnam(os_user)
        os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(
        self, argv: list[str], *, os_user: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        if os_user is None:
            state = self.state()
            os_user = state.os_user if state else self._os_user()
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if os_user is not None and os.geteuid() == 0:
            command = [runuser(), "-u", os_user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False, cwd="/")
        if check and result.returncode != 0:
            raise DatabaseSetupError(
                f"{argv[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout}"
            )
        return result


def connect_when_ready(url: str, timeout: float = 120.0, **kwargs: object):
    """`psycopg.connect`, waiting while the server is starting, stopping or recovering.

    After a backend dies the postmaster resets every session and replays WAL; that takes
    seconds to a minute, and a client that gives up at once turns one crash into dozens of
    failures. Any other connection error (wrong password, no server) is raised at once.
    """
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg.connect(url, **kwargs)  # type: ignore[arg-type]
        except psycopg.OperationalError as error:
            if not any(state in str(error) for state in _NOT_YET) or time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"
