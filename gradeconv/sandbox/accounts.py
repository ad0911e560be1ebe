"""Dedicated unprivileged accounts for workers when the grader is root.

Each concurrent worker gets a uid and gid of its own from a fixed range (no
passwd entry needed, no supplementary groups). Graders sharing a machine never
hold the same account at once, whatever their TMPDIR, mount namespace or root
folder, because nothing of the claim lives in the file system:
- a lock: an abstract Unix socket named after the uid, bound by the holder
  (one name per network namespace; the kernel frees it when its holder dies);
- a keeper: a thread of the holder whose file-system uid is the account's, so
  every grader that can see the holder's processes sees the account taken (in
  /proc), whatever its network namespace; a worker cannot signal or trace it,
  since its real and saved uids stay root's.
An account is taken only when, with our keeper running, no other keeper holds
it: two graders racing for one both see each other and both try the next. Its
processes are then leftovers of a holder that died (a live holder keeps its
keeper), and they are killed. So every process of the uid that a sweep kills
was started by the grader holding it, or by a grader that is gone. An account
is swept when taken and when given back: every process of that uid is killed
and every file it left in the shared scratch folders is removed, so a crashed
grader's leftovers never meet the next submission.
"""
from __future__ import annotations

import ctypes
import errno
import grp
import os
import pwd
import random
import signal
import socket
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gradeconv.sandbox.failures import MachineFailure
from gradeconv.sandbox.reaper import adopt_orphans, by_uid, numbered, reap_orphans, signal_as
from gradeconv.sandbox.staging import STAGE_PREFIX
from gradeconv.temporary import remove_tree

UID_BASE = int(os.environ.get("GRADECONV_UID_BASE", "61000"))
SLOTS = 256
#: world-writable folders where any uid can leave files behind
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")
#: files a submission may keep in scratch folders and its work dir (empty files cost kernel memory too)
MAX_SCRATCH_FILES = 10_000
#: folders nested deeper than this in scratch are refused: paths past PATH_MAX hide what is below
MAX_SCRATCH_DEPTH = 64


#: the abstract socket a holder binds: one name per uid, per network namespace
LOCK_NAME = "\0gradeconv-worker-account-{uid}"
#: a grader that lost a race for an account waits up to this long before it tries the next one
RACE_PAUSE_SECONDS = 0.01


class NoAccount(MachineFailure):
    """Every account of the range is in use, held by another grader or taken by a real user."""


class Keeper:
    """A thread of this grader acting, for the file system only, as the account: its claim, seen in /proc.

    Its real, effective and saved uids stay root's, so the account's workers can neither signal nor
    trace it; it does nothing but wait, and the claim ends with the thread (or with this process).
    """

    def __init__(self, uid: int):
        self.uid = uid
        self.tid = 0
        self.acting = False
        self._released = threading.Event()
        started = threading.Event()

        def keep() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.setfsuid(uid)
            self.acting = libc.setfsuid(uid) == uid  # setfsuid answers with the uid it leaves in place
            self.tid = threading.get_native_id()
            started.set()
            self._released.wait()

        self._thread = threading.Thread(target=keep, name=f"gradeconv-account-{uid}", daemon=True)
        self._thread.start()
        started.wait()

    def stop(self) -> None:
        self._released.set()
        self._thread.join()


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int
    lock: socket.socket | None = None
    keeper: Keeper | None = None


@dataclass(frozen=True)
class Holders:
    """The tasks acting as one uid, seen from here."""

    keepers: tuple[int, ...]  # threads of graders (root) acting as the uid for the file system: claims
    processes: tuple[int, ...]  # processes running as the uid: workers, or what a dead holder left


def holders(uid: int, own_keeper: int = 0) -> Holders:
    """Every task of the machine (as far as this PID namespace sees) that runs as or claims uid."""
    keepers, processes = set(), set()
    for pid in numbered("/proc"):
        status = _status(f"/proc/{pid}/status")
        if status is None:
            continue
        ids, threads = status
        if uid in ids[:3]:
            processes.add(int(pid))
        if threads > 1:  # a keeper is never a process's first thread
            for tid in numbered(f"/proc/{pid}/task"):
                task = _status(f"/proc/{pid}/task/{tid}/status") if tid != pid else None
                if task is not None and task[0][3] == uid and uid not in task[0][:3] and int(tid) != own_keeper:
                    keepers.add(int(tid))
    return Holders(tuple(sorted(keepers)), tuple(sorted(processes)))


def _status(path: str) -> tuple[tuple[int, ...], int] | None:
    """(real, effective, saved and file-system uid; number of threads) of a task, from its status file."""
    ids, threads = None, 1
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if line.startswith(b"Uid:"):
                    ids = tuple(int(field) for field in line.split()[1:5])
                elif line.startswith(b"Threads:"):
                    threads = int(line.split()[1])
                    break
    except (OSError, ValueError):
        return None
    return (ids, threads) if ids is not None and len(ids) == 4 else None


def _taken_by_system(number: int) -> bool:
    """A uid or gid that already names a real account or group."""
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(number)
            return True
        except KeyError:
            pass
    return False


def acquire() -> Account:
    """A free account, swept clean, held until release(); NoAccount if none can be had."""
    adopt_orphans()  # what the account's workers leave behind comes back here to be reaped
    for slot in range(SLOTS):
        number = UID_BASE + slot
        if _taken_by_system(number):
            continue
        account = _claim(number)
        if account is not None:
            return account
    raise NoAccount(f"all {SLOTS} worker accounts from uid {UID_BASE} are in use, held by other graders "
                    "or could not be swept clean")


def _claim(uid: int) -> Account | None:
    """The account of uid if no other grader holds it and it can be swept clean, else None."""
    lock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # not inherited (PEP 446)
    try:
        lock.bind(LOCK_NAME.format(uid=uid))
    except OSError as error:
        lock.close()
        if error.errno != errno.EADDRINUSE:
            raise NoAccount(f"cannot lock worker account {uid}: {error}") from None
        if not _squatted(uid):
            return None
        lock = None  # a worker took the name to keep graders out: the keepers alone decide
    keeper = Keeper(uid)
    account = Account(uid=uid, gid=uid, lock=lock, keeper=keeper)
    if not keeper.acting or holders(uid, keeper.tid).keepers:  # another grader holds it or is taking it
        abandon(account)
        time.sleep(random.uniform(0, RACE_PAUSE_SECONDS))  # so two racing graders part ways
        return None
    try:
        clean = sweep(account).clean  # only a dead holder's leftovers can be here
    except Exception:  # whatever a previous holder left, it must never reach the next student
        clean = False
    if clean:
        return account
    abandon(account)  # a previous holder's leftovers could not be removed: leave this account alone
    return None


def _squatted(uid: int) -> bool:
    """The account's lock name is bound, but only by processes that are not graders (not root): a worker
    where no seccomp filter stops it from binding abstract sockets, squatting other accounts' names.

    Looked into only when no keeper of the account is seen, so the usual case stays a bind and a scan.
    """
    if holders(uid).keepers:
        return False
    inodes = _socket_inodes("@" + LOCK_NAME.format(uid=uid)[1:])
    owners = [_status(f"/proc/{pid}/status") for pid in _owners(inodes)] if inodes else []
    return bool(owners) and all(owner is not None and 0 not in owner[0][:3] for owner in owners)


def _socket_inodes(path: str) -> set[str]:
    """The inodes of the Unix sockets bound to path (abstract names start with @), from /proc/net/unix."""
    try:
        with open("/proc/net/unix") as handle:
            rows = [line.split() for line in handle.readlines()[1:]]
    except OSError:
        return set()
    return {row[6] for row in rows if len(row) >= 8 and row[7] == path}


def _owners(inodes: set[str]) -> list[str]:
    """The processes (seen from here) holding one of these sockets open."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    found = []
    for pid in numbered("/proc"):
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    found.append(pid)
                    break
            except OSError:
                continue
    return found


def release(account: Account) -> bool:
    """Sweep the account and give it back; False if one of its processes survived the kill."""
    try:
        return sweep(account).processes
    finally:
        abandon(account)


def abandon(account: Account) -> None:
    """Give the account up without sweeping it (as a grader that dies does)."""
    if account.keeper is not None:
        account.keeper.stop()
    if account.lock is not None:
        account.lock.close()


@dataclass(frozen=True)
class Swept:
    processes: bool  # every process of the account is gone
    files: bool  # and everything it left in scratch folders, stale stages and System V IPC

    @property
    def clean(self) -> bool:
        return self.processes and self.files


def sweep(account: Account) -> Swept:
    """Kill every process of the account; remove what it left in scratch folders and System V IPC."""
    gone = by_uid(account.uid).kill_all()
    reap_orphans(account.uid)  # their zombies would count against the account's process limit
    removed = True
    for entry in scratch_entries(account.uid) + stale_stages(account.gid):
        removed = remove_entry(entry) and removed
    for kind, ident in ipc_objects(account.uid):
        remove_ipc(kind, ident)
    return Swept(gone, removed and not ipc_objects(account.uid))


def stale_stages(gid: int) -> list[Path]:
    """Stages a killed grader left behind for this account's group: the next holder could read them.

    While we hold the account no live stage can belong to its group.
    """
    folder = Path(tempfile.gettempdir())
    found = []
    for path in folder.glob(STAGE_PREFIX + "*"):
        try:
            info = path.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and info.st_gid == gid:
            found.append(path)
    return found


#: System V IPC tables: kind -> (the /proc file, its id column)
IPC_TABLES = {"shm": ("/proc/sysvipc/shm", "shmid"), "msg": ("/proc/sysvipc/msg", "msqid"),
              "sem": ("/proc/sysvipc/sem", "semid")}


def _ipc_rows(kind: str) -> list[dict[str, str]]:
    path, _ = IPC_TABLES[kind]
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    if not lines:
        return []
    names = lines[0].split()
    return [dict(zip(names, line.split())) for line in lines[1:]]


def ipc_objects(uid: int) -> list[tuple[str, int]]:
    """System V shared memory segments, message queues and semaphores owned or created by uid.

    They outlive every process, so a sweep must remove them (bubblewrap's own
    IPC namespace dies with the jail instead).
    """
    found = []
    for kind, (_, column) in IPC_TABLES.items():
        for row in _ipc_rows(kind):
            if str(uid) in (row.get("uid"), row.get("cuid")):
                found.append((kind, int(row[column])))
    return found


def shared_memory_bytes(uid: int) -> int:
    """Bytes of System V shared memory owned or created by uid (attached or not)."""
    return sum(int(row.get("size", 0)) for row in _ipc_rows("shm")
               if str(uid) in (row.get("uid"), row.get("cuid")))


def remove_ipc(kind: str, ident: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    IPC_RMID = 0
    if kind == "shm":
        libc.shmctl(ident, IPC_RMID, None)
    elif kind == "msg":
        libc.msgctl(ident, IPC_RMID, None)
    else:
        libc.semctl(ident, 0, IPC_RMID)


def scratch_entries(uid: int) -> list[Path]:
    """Entries of the shared scratch folders that belong to uid: at their top, or inside a folder anyone
    may write to (such as /tmp/.X11-unix), however many of those lie in between."""
    found = []
    pending = list(SCRATCH_DIRS)
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if info.st_uid == uid:
                        found.append(Path(entry.path))
                    elif stat.S_ISDIR(info.st_mode) and info.st_mode & 0o002:
                        pending.append(entry.path)
        except OSError:
            continue
    return found


@dataclass(frozen=True)
class Scratch:
    bytes: int
    files: int  # counted up to MAX_SCRATCH_FILES + 1: past that, the walk stops
    too_deep: bool = False  # folders nested past MAX_SCRATCH_DEPTH, or an entry the walk could not look at


def scratch_use(uid: int, roots: list[Path]) -> Scratch:
    """What uid keeps in the scratch folders and under the given roots; the walk stops past the file limit.

    Every process of uid is stopped while the walk runs (as root), so nothing can be renamed out of its
    way or swapped for a link under it; folders are opened without following links.
    """
    signal_as(uid, signal.SIGSTOP)
    try:
        return _measure([*scratch_entries(uid), *map(Path, roots)])
    finally:
        signal_as(uid, signal.SIGCONT)


def _measure(tops: list[Path]) -> Scratch:
    total, seen = 0, 0
    for top in tops:
        try:
            info = os.lstat(top)
        except FileNotFoundError:
            continue
        except OSError:  # a path too long to look at hides whatever lies below it
            return Scratch(total, seen, too_deep=True)
        seen += 1
        total += info.st_blocks * 512
        if stat.S_ISDIR(info.st_mode):
            inside = _walk(top)
            total, seen = total + inside.bytes, seen + inside.files
            if inside.too_deep:
                return Scratch(total, seen, too_deep=True)
        if seen > MAX_SCRATCH_FILES:
            break
    return Scratch(total, seen)


def _walk(top: Path) -> Scratch:
    """Bytes and entries below the folder top, depth first through folder descriptors (at most
    MAX_SCRATCH_DEPTH open at once), stopping past MAX_SCRATCH_FILES entries."""
    total, seen = 0, 0
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(top, flags)
    except FileNotFoundError:
        return Scratch(0, 0)
    except OSError:
        return Scratch(0, 0, too_deep=True)
    stack = [(fd, os.scandir(fd))]
    try:
        while stack and seen <= MAX_SCRATCH_FILES:
            folder, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                entries.close()
                os.close(folder)
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            seen += 1
            total += info.st_blocks * 512
            if stat.S_ISDIR(info.st_mode):
                if len(stack) >= MAX_SCRATCH_DEPTH:
                    return Scratch(total, seen, too_deep=True)
                inner = os.open(entry.name, flags, dir_fd=folder)
                stack.append((inner, os.scandir(inner)))
    except OSError:  # nothing moves while the uid is stopped: an error here is not an honest one
        return Scratch(total, seen, too_deep=True)
    finally:
        for folder, entries in stack:
            entries.close()
            os.close(folder)
    return Scratch(total, seen)


def remove_entry(path: Path) -> bool:
    """Remove a file or folder tree without ever following a link out of it; True when it is gone."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            return remove_tree(path)
        os.unlink(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def grant(account: Account, stage_root: Path) -> None:
    """Let the account read its stage and write only its work dir; its logs stay the grader's."""
    os.chown(stage_root, 0, account.gid)
    os.chmod(stage_root, 0o710)
    for name in ("runtime", "pkg"):
        for folder, dirs, files in os.walk(stage_root / name):
            os.chown(folder, 0, account.gid)
            os.chmod(folder, 0o750)
            for file in files:
                path = os.path.join(folder, file)
                os.chown(path, 0, account.gid, follow_symlinks=False)
                os.chmod(path, 0o640)
    work = stage_root / "work"
    os.chown(work, account.uid, account.gid)
    os.chmod(work, 0o700)


def protect(paths: list[Path]) -> None:
    """Take away other users' access to paths no worker account may read.

    A worker account is "other" to every file of the grader, so a file others
    may read (the reference, the rubric, a classmate's submission) would be
    readable from student code. Symbolic links, the root folder and shared
    folders (sticky or writable by everyone, like /tmp) are left alone.
    """
    for path in paths:
        try:
            info = os.lstat(path)
        except OSError:
            continue
        shared = info.st_mode & (stat.S_ISVTX | stat.S_IWOTH) or os.path.realpath(path) == "/"
        if not stat.S_ISLNK(info.st_mode) and not shared and info.st_mode & 0o007:
            os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o007)
