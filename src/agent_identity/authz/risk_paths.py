"""Which file paths are sensitive: secrets to keep from being read, places never to write.

Two classes:

* ``credential``: the file *is* a secret (or holds them): SSH private keys, cloud CLI
  credentials (``~/.aws``, ``~/.config/gcloud``, ``~/.azure``, ``~/.kube/config``), ``.netrc``,
  ``.git-credentials``, ``.npmrc``/``.pypirc`` tokens, GnuPG and pass stores, shell history,
  ``/etc/shadow``, ``/proc/*/environ``, ``.env`` files (not ``.env.example`` and friends), key
  stores (``*.pem``, ``*.key``, ``*.p12``) and OpenClaw's own config and this plugin's data.
  Reading one puts a secret in the model's context; writing one replaces it.
* ``system``: writing here changes the machine or plants something that runs later: ``/etc``,
  ``/boot``, ``/root``, ``/usr``, ``/bin``, ``/sbin``, ``/lib*``, ``/var/lib``, ``/var/log``,
  cron spools, ``/proc/sys``, ``/sys``, devices, macOS system folders, and in a home directory the
  shell start-up files, ``~/.ssh`` (``authorized_keys``), autostart/launch agents, user systemd
  units, ``.gitconfig``, pip config and git hooks.

Matching is lexical and conservative: case-insensitive (macOS file systems are), ``$HOME`` /
``${HOME}`` / ``/home/<user>`` / ``/Users/<user>`` count as ``~``, ``..`` is resolved, and
home-relative names also match relative to the working directory (it may be the home).
"""

from __future__ import annotations

import posixpath
import re
from typing import Final, Literal

__all__ = ["PathClass", "classify_path", "normalize_path"]

PathClass = Literal["credential", "system"]

_HOME_RE: Final = re.compile(r"^(?:\$\{?home\}?|/home/[^/]+|/users/[^/]+|~[a-z0-9_.-]*)(?=/|$)")
_SAFE_DEVICES: Final = frozenset(
    {"/dev/null", "/dev/zero", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/tty"}
    | {"/dev/random", "/dev/urandom", "/dev/full"}
)
# Not a temp-file use: these are devices a write may safely target.
_SAFE_DEVICE_PREFIXES: Final = ("/dev/fd/", "/dev/shm/", "/dev/pts/")  # noqa: S108
_SYSTEM_PREFIXES: Final = (
    "/etc",
    "/boot",
    "/root",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/var/lib",
    "/var/log",
    "/var/spool/cron",
    "/var/at",
    "/proc/sys",
    "/sys",
    "/dev",
    "/system",
    "/library",
    "/private/etc",
    "/private/var/db",
)
# Paths relative to a home directory (written without the leading ``~/``).
_HOME_CREDENTIAL_DIRS: Final = (
    ".aws",
    ".config/gcloud",
    ".azure",
    ".gnupg",
    ".password-store",
    ".docker",
    ".kube",
    ".openclaw/credentials",
    ".openclaw/plugins/identity",
    ".terraform.d",
)
_HOME_SYSTEM_DIRS: Final = (
    ".ssh",
    ".config/autostart",
    ".config/systemd",
    "library/launchagents",
    ".config/fish",
    ".config/pip",
    ".pip",
)
_CREDENTIAL_NAMES: Final = frozenset(
    {".netrc", "_netrc", ".pgpass", ".my.cnf", ".git-credentials", ".npmrc", ".pypirc"}
    | {".vault-token", "openclaw.json", "auth-profiles.json", ".bash_history", ".zsh_history"}
    | {".sh_history", ".python_history", ".psql_history", ".mysql_history"}
    | {".node_repl_history", "shadow", "gshadow", "master.passwd"}
)
_SYSTEM_NAMES: Final = frozenset(
    {".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".zshrc"}
    | {".zprofile", ".zshenv", ".zlogin", ".gitconfig", "authorized_keys", "crontab"}
)
_KEY_SUFFIXES: Final = (".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".ppk")
_SSH_KEY_RE: Final = re.compile(r"^id_[a-z0-9_]+$")
_ENV_FILE_RE: Final = re.compile(r"^\.env(?:\.[a-z0-9_-]+)*$")
_ENV_SAFE_SUFFIXES: Final = (".example", ".sample", ".template", ".dist", ".defaults")
_ENVIRON_RE: Final = re.compile(r"^/proc/[^/]+/(?:environ|mem|cmdline)$")


def normalize_path(path: str) -> str:
    """A path in the form the rules compare: lower-case, home as ``~``, ``..`` resolved.

    Relative paths stay relative (without a leading ``./``).
    """
    text = path.strip().strip("'\"").replace("\\", "/").lower()
    text = _HOME_RE.sub("~", text)
    if not text:
        return ""
    normal = posixpath.normpath(text)
    return "/" if normal == "//" else normal


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _home_relative(path: str) -> str | None:
    """The part after ``~/`` (or the whole relative path, which may be under the home)."""
    if path.startswith("~/"):
        return path[2:]
    if path.startswith(("/", "~", "..")):
        return None
    return path


def _by_name(name: str, parent: str) -> PathClass | None:
    if name in _CREDENTIAL_NAMES or name.endswith(_KEY_SUFFIXES):
        return "credential"
    if _ENV_FILE_RE.match(name) and not name.endswith(_ENV_SAFE_SUFFIXES):
        return "credential"
    if parent.endswith(".ssh") and _SSH_KEY_RE.match(name):
        return "credential"
    if name in _SYSTEM_NAMES or "/.git/hooks" in f"/{parent}":
        return "system"
    return None


def classify_path(path: str) -> PathClass | None:
    """The sensitivity of a path, or ``None`` for an ordinary one.

    Args:
        path: A path as written in a tool call (``~``, ``$HOME``, relative, quoted …).
    """
    normal = normalize_path(path)
    if not normal or normal == ".":
        return None
    parent, _, name = normal.rpartition("/")
    found = _by_name(name, parent)
    if found is not None:
        return found
    if _ENVIRON_RE.match(normal):
        return "credential"
    relative = _home_relative(normal)
    if relative == ".ssh":
        return "credential"  # the folder as a whole holds the private keys
    if relative is not None:
        if any(_under(relative, prefix) for prefix in _HOME_CREDENTIAL_DIRS):
            return "credential"
        if any(_under(relative, prefix) for prefix in _HOME_SYSTEM_DIRS):
            return "system"
    if normal in _SAFE_DEVICES or normal.startswith(_SAFE_DEVICE_PREFIXES):
        return None
    if any(_under(normal, prefix) for prefix in _SYSTEM_PREFIXES):
        return "system"
    return None
