"""Rules for system administration, network and package commands.

Power and services, git history, signals, network clients, containers, installers, security
controls, accounts, kernel and history tampering. See :mod:`.risk_commands` for the contract.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from agent_identity.authz.risk_shell import Command
from agent_identity.authz.risk_vocab import FETCHERS, Checker, CommandContext, parse_options

__all__ = ["SYSTEM_CHECKERS", "packages"]

_POWER_WORDS: Final = frozenset({"poweroff", "reboot", "halt", "kexec", "suspend", "hibernate"})
_SECURITY_UNITS: Final = ("firewalld", "ufw", "apparmor", "auditd", "selinux", "iptables")
_READ_ONLY_VERBS: Final = frozenset(
    {"status", "show", "list-units", "list-unit-files", "list-timers", "cat", "is-active"}
    | {"is-enabled", "is-failed"}
)
_CORE_PROCESSES: Final = frozenset({"init", "systemd", "launchd", "1"})
_INSTALL_VERBS: Final = frozenset({"install", "i", "add", "ci", "get", "require", "in"})
_ACCOUNT_TOOLS: Final = frozenset(
    {"useradd", "userdel", "usermod", "adduser", "deluser", "groupadd", "groupdel"}
    | {"groupmod", "passwd", "chpasswd", "visudo", "vipw", "dscl"}
)
_INSTALLERS: Final = frozenset(
    {"pip", "pip3", "pipx", "uv", "poetry", "conda", "mamba", "npm", "pnpm", "yarn", "bun"}
    | {"gem", "cargo", "go", "apt", "apt-get", "aptitude", "yum", "dnf", "apk", "brew"}
    | {"zypper", "snap", "port", "choco", "winget", "scoop", "composer", "deno"}
)


def _disk_tool(command: Command, _ctx: CommandContext) -> Iterator[str]:
    if parse_options(command.args).has("l", "list") or "print" in command.args:
        return  # listing partitions changes nothing
    if command.name != "diskutil" or any(
        a.lower().startswith(("erase", "partition", "zero", "secureerase", "randomdisk"))
        for a in command.args
    ):
        yield "disk-format"


def _init(command: Command, _ctx: CommandContext) -> Iterator[str]:
    if any(a in {"0", "6"} for a in command.args):  # runlevel 0 halts, 6 reboots
        yield "system-power"


def _systemctl(command: Command, _ctx: CommandContext) -> Iterator[str]:
    words = parse_options(command.args).positional
    verb = words[0].lower() if words else ""
    if verb in _POWER_WORDS:
        yield "system-power"
    elif verb in {"stop", "disable", "mask", "kill"} and any(
        unit.lower().startswith(_SECURITY_UNITS) for unit in words[1:]
    ):
        yield "security-disable"
    elif verb and verb not in _READ_ONLY_VERBS:
        yield "service-control"


def _git(command: Command, _ctx: CommandContext) -> Iterator[str]:
    args = list(command.args)
    # Global options before the subcommand (``git -C dir -c k=v push``).
    while args and args[0].startswith("-"):
        args = args[2:] if args[0] in {"-C", "-c"} else args[1:]
    if not args:
        return
    sub, rest = args[0].lower(), args[1:]
    options = parse_options(rest)
    if sub == "push":
        forced = options.has("f", "force", "force-with-lease", "force-if-includes")
        if forced or any(ref.startswith("+") for ref in options.positional):
            yield "git-force-push"
        if options.has("d", "delete", "mirror", "prune") or any(
            ref.startswith(":") for ref in options.positional
        ):
            yield "git-destructive"
    elif (
        (sub == "reset" and "hard" in options.long)
        or (sub == "clean" and options.has("f", "force"))
        or (sub == "branch" and (options.has("D") or {"delete", "force"} <= options.long))
        or (sub in {"checkout", "restore"} and ("--" in rest or "." in options.positional))
        or (sub == "stash" and options.positional[:1] in {("drop",), ("clear",)})
        or sub in {"filter-branch", "filter-repo"}
        or (sub == "reflog" and options.positional[:1] == ("expire",))
    ):
        yield "git-destructive"


def _kill_targets(args: tuple[str, ...]) -> list[str] | None:
    """The pids of ``kill`` (``None`` for ``kill -l``): words after the signal option."""
    words = list(args)
    if words[:1] in (["-l"], ["-L"], ["--list"]):
        return None
    if words[:1] in (["-s"], ["-n"], ["--signal"]):
        words = words[2:]
    elif words and words[0].startswith("-") and words[0] != "--":
        words = words[1:]  # ``-9``, ``-KILL``, ``-SIGTERM``; a later ``-1`` is a pid
    return [w for w in words if w != "--"]


def _kill(command: Command, _ctx: CommandContext) -> Iterator[str]:
    if command.name == "killall5":
        yield "kill-all"
        return
    if command.name == "kill":
        found = _kill_targets(command.args)
        if found is None:
            return
        targets = set(found)
    else:
        targets = {t.lower() for t in parse_options(command.args).positional}
    # pid 1 is init; ``-1`` signals every process the user may signal.
    yield "kill-all" if targets & (_CORE_PROCESSES | {"-1"}) else "process-kill"


def _ssh_remote_command(args: tuple[str, ...]) -> str:
    """The command ``ssh [options] host command…`` runs remotely (``""`` if none)."""
    positional: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("-") and not positional:
            # Options with a value: ``-p 22``, ``-i key``, ``-o Opt=v`` (unless glued on).
            skip = len(arg) == 2 and arg[1] in "bcDEeFIiJLlmOopQRSWw"
        else:
            positional.append(arg)
    return " ".join(positional[1:])


def _network(command: Command, ctx: CommandContext) -> Iterator[str]:
    args = [a.lower() for a in command.args]
    if command.name == "ssh":
        # What runs on the remote host is as dangerous there as here.
        yield from ctx.nested(_ssh_remote_command(command.args))
    if (
        command.name in {"nc", "ncat", "netcat"}
        and any(a in {"-e", "-c", "--exec", "--sh-exec", "--lua-exec"} for a in args)
    ) or (command.name == "socat" and any(a.startswith(("exec:", "system:")) for a in args)):
        yield "reverse-shell"
    yield "network-fetch" if command.name in FETCHERS else "remote-access"


def _rsync(command: Command, _ctx: CommandContext) -> Iterator[str]:
    # ``host:path`` or ``rsync://``: a remote end; a purely local copy is no network access.
    if any(":" in arg for arg in parse_options(command.args).positional):
        yield "remote-access"


def _container(command: Command, _ctx: CommandContext) -> Iterator[str]:
    args = [a.lower() for a in command.args]
    if not args or args[0] not in {"run", "create", "exec"}:
        return
    joined = " ".join(args)
    mounts = [args[i + 1] for i, a in enumerate(args[:-1]) if a in {"-v", "--volume", "--mount"}]
    mounts += [a.split("=", 1)[1] for a in args if a.startswith(("--volume=", "--mount="))]
    root_mount = any(
        m.split(":", 1)[0] in {"/", "/etc", "/root", "/var/run/docker.sock", "/run/docker.sock"}
        or "source=/," in m + ","
        or "src=/," in m + ","
        for m in mounts
    )
    if (
        "--privileged" in args
        or root_mount
        or re.search(r"--(?:pid|ipc|uts|userns)[= ]host|--cap-add[= ](?:all|sys_admin)", joined)
        or "unconfined" in joined
    ):
        yield "container-escape"


def packages(command: Command, _ctx: CommandContext) -> Iterator[str]:
    """``package-install`` for an installer's install verb (``pip install``, ``npm i -g`` …)."""
    words = [a.lower() for a in parse_options(command.args).positional]
    if command.name == "uv" and words[:1] in (["pip"], ["tool"]):
        words = words[1:]
    if command.name == "yarn" and words[:1] == ["global"]:
        words = words[1:]
    if command.name == "pacman" and parse_options(command.args).has("S"):
        words = ["install"]
    if words and words[0] in _INSTALL_VERBS:
        yield "package-install"


def _crontab(command: Command, _ctx: CommandContext) -> Iterator[str]:
    if "-l" not in command.args:  # listing the table changes nothing
        yield "scheduled-task"


def _simple(rule: str) -> Checker:
    def check(_command: Command, _ctx: CommandContext) -> Iterator[str]:
        yield rule

    return check


def _security(command: Command, _ctx: CommandContext) -> Iterator[str]:
    args = [a.lower() for a in command.args]
    if (
        (command.name == "setenforce" and args[:1] in (["0"], ["permissive"]))
        or (command.name == "ufw" and args[:1] == ["disable"])
        or (command.name in {"iptables", "ip6tables"} and {"-f", "--flush", "-x"} & set(args))
        or (command.name == "nft" and args[:2] == ["flush", "ruleset"])
        or (command.name == "csrutil" and args[:1] == ["disable"])
        or (command.name == "spctl" and "--master-disable" in args)
        or (command.name == "auditctl" and args[:2] == ["-e", "0"])
    ):
        yield "security-disable"


def _history(command: Command, _ctx: CommandContext) -> Iterator[str]:
    args = list(command.args)
    if (command.name == "history" and parse_options(args).has("cw")) or (
        command.name in {"unset", "export"} and any(a.startswith("HIST") for a in args)
    ):
        yield "history-tampering"


def _sysctl(command: Command, _ctx: CommandContext) -> Iterator[str]:
    if parse_options(command.args).has("w", "write") or any("=" in a for a in command.args):
        yield "kernel-change"


SYSTEM_CHECKERS: Final[dict[str, Checker]] = {
    "shutdown": _simple("system-power"),
    "reboot": _simple("system-power"),
    "halt": _simple("system-power"),
    "poweroff": _simple("system-power"),
    "init": _init,
    "telinit": _init,
    "systemctl": _systemctl,
    "service": _simple("service-control"),
    "launchctl": _simple("service-control"),
    "git": _git,
    "kill": _kill,
    "pkill": _kill,
    "killall": _kill,
    "killall5": _kill,
    "crontab": _crontab,
    "at": _simple("scheduled-task"),
    "batch": _simple("scheduled-task"),
    "sysctl": _sysctl,
    "rsync": _rsync,
    "docker": _container,
    "podman": _container,
    "nerdctl": _container,
    "npx": _simple("package-install"),
    "history": _history,
    "unset": _history,
    "export": _history,
    **dict.fromkeys(("mount", "umount", "losetup", "cryptsetup"), _simple("mount")),
    **dict.fromkeys(("insmod", "rmmod", "modprobe", "kexec"), _simple("kernel-change")),
    **dict.fromkeys(("mkfs", "mke2fs", "mkswap", "fdisk", "sfdisk", "cfdisk"), _disk_tool),
    **dict.fromkeys(("parted", "gdisk", "sgdisk", "wipefs", "diskutil"), _disk_tool),
    **dict.fromkeys(("setenforce", "ufw", "iptables", "ip6tables", "nft"), _security),
    **dict.fromkeys(("csrutil", "spctl", "auditctl"), _security),
    **dict.fromkeys(_ACCOUNT_TOOLS, _simple("account-change")),
    **dict.fromkeys(FETCHERS, _network),
    **dict.fromkeys(("nc", "ncat", "netcat", "socat", "telnet", "ssh", "scp"), _network),
    **dict.fromkeys(("sftp", "ftp", "mosh"), _network),
    **dict.fromkeys(_INSTALLERS | {"pacman"}, packages),
}
"""Checkers by command name."""
