"""The production shape on 127.0.0.1: gunicorn workers behind nginx with deploy/nginx's config.

nginx runs as a child process in the foreground (``daemon off``) with a temporary
prefix holding its config, pid, logs and buffers; gunicorn runs as a child process
too. Every log is kept and printed if the test using them fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from simulations.procs import HOST, free_port, stop, wait_ready

ROOT = Path(__file__).resolve().parents[2]
SITE_CONF = ROOT / "deploy" / "nginx" / "fieldsync.conf"

#: What the test adds around the site file: the main context nginx.conf would hold.
MAIN_CONF = """\
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/fieldsync.conf;
}}
"""


def nginx_binary() -> str | None:
    """The nginx executable (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


@dataclass(frozen=True, slots=True)
class Running:
    """A child process listening on 127.0.0.1:``port``, and the files it logs to."""

    port: int
    logs: tuple[Path, ...]

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://{HOST}:{self.port}"


def render_site(listen: str, upstream: str) -> str:
    """deploy/nginx/fieldsync.conf with its two placeholders filled in."""
    text = SITE_CONF.read_text()
    assert "__LISTEN__" in text and "__UPSTREAM__" in text
    return text.replace("__LISTEN__", listen).replace("__UPSTREAM__", upstream)


@contextmanager
def nginx(upstream: str, tls: tuple[Path, Path] | None = None) -> Iterator[Running]:
    """nginx on a free port in front of ``upstream`` (host:port), until the block ends.

    With ``tls`` (certificate, key: PEM files) it serves https, as the README shows:
    ``listen ... ssl`` and the two ``ssl_certificate`` lines.
    """
    binary = nginx_binary()
    assert binary is not None, "nginx is not installed"
    # Not under pytest's tmp_path: run as root, nginx's workers are "nobody", and
    # pytest's base folder is private to its owner; this one they may enter.
    prefix = Path(tempfile.mkdtemp(prefix="fs-nginx-"))
    prefix.chmod(0o755)
    port = free_port()
    site = render_site(f"{HOST}:{port}", upstream)
    if tls is not None:  # what the README says to add: "ssl", and the two lines
        cert, key = shutil.copy(tls[0], prefix / "tls.crt"), shutil.copy(tls[1], prefix / "tls.key")
        listen = f"    listen {HOST}:{port};\n"
        assert listen in site
        site = site.replace(
            listen,
            f"    listen {HOST}:{port} ssl;\n    ssl_certificate {cert};\n"
            f"    ssl_certificate_key {key};\n",
        )
    (prefix / "fieldsync.conf").write_text(site)
    (prefix / "nginx.conf").write_text(MAIN_CONF.format(prefix=prefix))
    logs = (prefix / "stderr.log", prefix / "error.log")
    argv = [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(logs[1])]
    with logs[0].open("wb") as err:
        proc = subprocess.Popen(argv, stdout=err, stderr=subprocess.STDOUT)
    try:
        with printed_on_failure(*logs):
            _wait_listening(port, proc)
            yield Running(port, logs)
    finally:
        stop(proc)
        shutil.rmtree(prefix, ignore_errors=True)


@contextmanager
def gunicorn(
    database_url: str, log: Path, workers: int = 2, tls: tuple[Path, Path] | None = None
) -> Iterator[Running]:
    """The README's production command (sync workers), bound to 127.0.0.1.

    With ``tls`` (certificate, key) it serves https itself (``--certfile/--keyfile``).
    """
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "--workers", str(workers),
        "--bind", f"{HOST}:{port}", "--no-control-socket", "server_sync.wsgi:app",
    ]  # fmt: skip
    if tls is not None:
        argv += ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
    env = {**os.environ, "FIELDSYNC_DATABASE_URL": database_url}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        with printed_on_failure(log):
            if tls is None:
                wait_ready(f"http://{HOST}:{port}", timeout=60, proc=proc)
            else:  # a request waits in the listen queue until a worker has booted
                _wait_listening(port, proc, timeout=60)
            yield Running(port, (log,))
    finally:
        stop(proc)


@contextmanager
def printed_on_failure(*logs: Path) -> Iterator[None]:
    """Print ``logs`` if the block raises (pytest shows them with the failure)."""
    try:
        yield
    except BaseException:
        for path in logs:
            text = path.read_text(errors="replace") if path.exists() else "(missing)"
            print(f"----- {path} -----\n{text[-20_000:]}")
        raise


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode} before it listened")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{proc.args} not listening on {port} after {timeout} s")
