"""The private cluster runs the server as an unprivileged user, whoever starts it."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import psycopg
import pytest

from streetaudit.sql.cluster import LocalCluster, find_bindir, runuser


def server_user(url: str) -> str:
    """The OS user owning the server's data directory (the server runs as its owner)."""
    import pwd

    with psycopg.connect(url) as conn:
        data_dir = conn.execute("SHOW data_directory").fetchone()[0]
    return pwd.getpwuid(Path(data_dir).stat().st_uid).pw_name


def test_session_cluster_server_is_not_root(pg_cluster: LocalCluster) -> None:
    import pwd

    user = server_user(pg_cluster.url("postgres"))
    assert user != "root"
    if os.geteuid() != 0:
        assert user == pwd.getpwuid(os.geteuid()).pw_name


def _world_readable_copy(target: Path) -> Path:
    """The cluster code and psycopg, copied where an unprivileged user can import them.

    The test's own interpreter and checkout may live under /root (mode 700), so the
    copy runs under the system Python instead; the code is the project's own files.
    """
    import importlib.util
    import shutil

    import streetaudit.sql.cluster as cluster_module

    sql_dir = Path(cluster_module.__file__).parent
    package = target / "streetaudit" / "sql"
    package.mkdir(parents=True)
    (target / "streetaudit" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    for name in ("cluster.py", "errors.py"):
        shutil.copy(sql_dir / name, package / name)
    for module in ("psycopg", "psycopg_binary", "typing_extensions"):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, target / origin.parent.name)
            libs = origin.parent.parent / f"{module}.libs"
            if libs.exists():
                shutil.copytree(libs, target / libs.name)
        else:
            shutil.copy(origin, target / origin.name)
    subprocess.run(["chmod", "-R", "a+rX", str(target)], check=True)
    return target


def test_a_normal_user_can_start_and_stop_a_cluster() -> None:
    """As root, run the cluster code as `nobody`: the path every non-root user takes."""
    if os.geteuid() != 0:
        pytest.skip("already running as a normal user: the session cluster covers this path")
    system_python = Path("/usr/bin/python3")
    if not system_python.exists():
        pytest.fail("/usr/bin/python3 is needed to run the cluster code as another user")
    work = Path(f"/tmp/sa-nobody-{os.getpid()}")
    subprocess.run(["rm", "-rf", str(work)], check=False)
    work.mkdir(mode=0o755)
    code = _world_readable_copy(work / "code")
    data = work / "data"
    data.mkdir()
    os.chown(data, *_uid_gid("nobody"))
    script = textwrap.dedent(
        f"""
        import os, psycopg
        from pathlib import Path
        from streetaudit.sql.cluster import LocalCluster
        assert os.geteuid() != 0
        cluster = LocalCluster(Path({str(data)!r}), Path({str(find_bindir())!r}))
        try:
            url = cluster.up()
            assert cluster.running()
            with psycopg.connect(url) as conn:
                print(conn.execute("SELECT current_setting('data_directory')").fetchone()[0])
        finally:
            cluster.destroy()
        assert not cluster.running()
        """
    )
    try:
        result = subprocess.run(
            [runuser(), "-u", "nobody", "--", str(system_python), "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd="/tmp",
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(code), "HOME": "/tmp"},
        )
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(data / "pg")


def _uid_gid(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def test_scratch_database_ignores_the_configured_url_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Benchmarks write freely, so they must never land on the user's configured database."""
    from streetaudit.sql.connect import scratch_database

    monkeypatch.setenv("STREETAUDIT_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/real_data")
    with scratch_database() as url:
        assert "real_data" not in url
        with psycopg.connect(url) as conn:
            data_dir = conn.execute("SHOW data_directory").fetchone()[0]
            assert conn.execute("SELECT to_regclass('streetaudit.sample_point')").fetchone()[0] is not None
    assert not Path(data_dir).exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_a_crashed_backend_is_waited_out_and_named_in_the_crash_report(tmp_path: Path) -> None:
    """Killing one backend makes the postmaster reset every session and replay WAL; a client
    that waits connects again, and the crash report names the signal and the statement."""
    import signal
    import threading

    from streetaudit.sql.cluster import connect_when_ready

    cluster = LocalCluster(tmp_path / "pg", fast_unsafe=True)
    cluster.up()
    try:
        assert cluster.crash_report() == []
        with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
            assert conn.execute("SHOW dynamic_shared_memory_type").fetchone() == ("mmap",)
            # Written to the WAL file at commit (the cluster's default, off, would leave the
            # commit in shared memory, which the reset discards): recovery must replay it.
            conn.execute("SET synchronous_commit = on")
            conn.execute("CREATE TABLE kept AS SELECT generate_series(1, 10000) AS n")
        victim = psycopg.connect(cluster.url("postgres"), autocommit=True)
        pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]
        errors: list[Exception] = []

        def sleep() -> None:
            try:
                victim.execute("SELECT pg_sleep(60) AS killed_here")
            except psycopg.Error as error:
                errors.append(error)

        sleeper = threading.Thread(target=sleep)
        sleeper.start()
        with psycopg.connect(cluster.url("postgres"), autocommit=True) as watcher:
            while not watcher.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND query LIKE %s", (pid, "%killed_here%")
            ).fetchone():
                pass
        os.kill(pid, signal.SIGKILL)
        sleeper.join(30)
        assert errors, "the killed backend's client saw no error"
        victim.close()

        with connect_when_ready(cluster.url("postgres"), timeout=60, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (10000,)
        report = "\n".join(cluster.crash_report())
        assert f"(PID {pid}) was terminated by signal 9" in report
        assert "Failed process was running: SELECT pg_sleep(60) AS killed_here" in report
        assert "terminating any other active server processes" in report
    finally:
        cluster.destroy()


def test_waiting_for_the_server_does_not_hide_a_wrong_password(pg_cluster: LocalCluster) -> None:
    from streetaudit.sql.cluster import connect_when_ready

    bad = pg_cluster.url("postgres").replace("://streetaudit:", "://streetaudit:x", 1)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect_when_ready(bad, timeout=600)
