"""The risk rule table: every rule id with its level, reason and description.

Order matters: when several rules of the same level match, the first one listed here gives
the assessment's reason. ``identity_list_risk_patterns`` shows this table as is.
"""

from __future__ import annotations

from typing import Final

from agent_identity.authz.risk_model import RiskLevel, RiskRule

__all__ = ["RULES", "RULES_BY_ID", "RULE_ORDER"]

_EXEC = ("exec", "process")
_FILES = ("write", "edit", "apply_patch")


def _rule(
    rule_id: str,
    level: RiskLevel,
    reason: str,
    description: str,
    tools: tuple[str, ...] = _EXEC,
) -> RiskRule:
    return RiskRule(id=rule_id, level=level, reason=reason, description=description, tools=tools)


RULES: Final[tuple[RiskRule, ...]] = (
    # ---------------------------------------------------------------- high
    _rule(
        "pipe-to-shell",
        "high",
        "Pipe-to-shell: network fetch piped to shell execution",
        "Output of curl/wget/nc/ssh piped into sh, bash, python … reading stdin "
        "(curl -fsSL https://x | sudo bash).",
    ),
    _rule(
        "remote-code-eval",
        "high",
        "Remote code execution: downloaded content run by a shell",
        "Fetched text run via eval, source, sh -c or a process substitution, or a downloaded "
        'file run later (eval "$(curl …)", bash <(wget -qO- …), curl -o i.sh … && bash i.sh).',
    ),
    _rule(
        "decode-to-shell",
        "high",
        "Obfuscated payload: decoded data executed by a shell",
        "base64 -d / xxd -r / openssl -d output piped into or evaluated by a shell.",
    ),
    _rule(
        "credential-exfiltration",
        "high",
        "Credential exfiltration: secrets sent over the network",
        "A credential file, the environment or shell history sent to curl, nc, scp … "
        "(cat ~/.ssh/id_rsa | curl -d @- …, env | nc host 80, curl -T ~/.aws/credentials).",
    ),
    _rule(
        "reverse-shell",
        "high",
        "Reverse shell: gives a remote host an interactive shell",
        "/dev/tcp redirections, nc -e, socat exec:, Python socket + pty/dup2 one-liners.",
    ),
    _rule(
        "rm-critical",
        "high",
        "Recursive delete of a critical path",
        "rm -r (any spelling: -rf, -r -f, --recursive) or find -delete on /, ~, ., *, system "
        "folders, $VAR/ (empty variable → /), or rm --no-preserve-root.",
    ),
    _rule(
        "disk-format",
        "high",
        "Disk formatting or partitioning destroys data",
        "mkfs*, mkswap, fdisk, parted, wipefs, diskutil eraseDisk …",
    ),
    _rule(
        "disk-overwrite",
        "high",
        "Raw write to a disk device destroys data",
        "dd of=/dev/sda, > /dev/nvme0n1, shred /dev/sdb.",
    ),
    _rule(
        "fork-bomb",
        "high",
        "Fork bomb: exhausts the process table",
        ":(){ :|:& };: and renamed variants.",
    ),
    _rule(
        "permission-critical",
        "high",
        "Dangerous permission change (system path or setuid)",
        "chmod/chown -R or world-writable modes on critical paths (chmod -R 777 /), "
        "setuid/setgid bits (chmod u+s, 4755).",
    ),
    _rule(
        "sensitive-path-write",
        "high",
        "Writes to a sensitive system or credential path",
        "write/edit/apply_patch or a shell write (>, tee, cp, mv, rm, sed -i, dd of=) to /etc, "
        "/boot, /root, /usr, /var/lib, /proc/sys, ~/.ssh, ~/.aws, shell rc files, .env, "
        "git hooks …",
        (*_FILES, *_EXEC),
    ),
    _rule(
        "credential-read",
        "high",
        "Reads a credential file (private key, token or secrets)",
        "read, cat, cp, grep … of ~/.ssh/id_*, ~/.aws/credentials, .netrc, .env, "
        "/etc/shadow, shell history …",
        ("read", *_EXEC),
    ),
    _rule(
        "privilege-escalation",
        "high",
        "Privilege escalation: runs a command as root",
        "sudo, su, doas, pkexec, run0.",
    ),
    _rule(
        "system-power",
        "high",
        "Shuts down or reboots the machine",
        "shutdown, reboot, halt, poweroff, init 0/6, systemctl poweroff|reboot|halt.",
    ),
    _rule(
        "kill-all",
        "high",
        "Kills init or every process",
        "kill -9 1, kill -9 -1, killall5, pkill init|systemd.",
    ),
    _rule(
        "git-force-push",
        "high",
        "Force push rewrites the remote branch history",
        "git push --force / -f / --force-with-lease / +refspec.",
    ),
    _rule(
        "container-escape",
        "high",
        "Privileged container can take over the host",
        "docker/podman run --privileged, -v /:/host, docker.sock mounts, --pid=host, "
        "--cap-add=SYS_ADMIN, unconfined security profiles.",
    ),
    _rule(
        "security-disable",
        "high",
        "Disables a security control (firewall, SELinux, audit)",
        "setenforce 0, ufw disable, iptables -F, systemctl stop firewalld, csrutil disable.",
    ),
    _rule(
        "account-change",
        "high",
        "Modifies system user accounts or sudoers",
        "useradd, userdel, usermod, passwd, chpasswd, visudo, dscl.",
    ),
    _rule(
        "kernel-change",
        "high",
        "Changes the running kernel (modules or parameters)",
        "insmod, rmmod, modprobe, kexec, sysctl -w.",
    ),
    # ---------------------------------------------------------------- medium
    _rule(
        "package-install",
        "medium",
        "Installs third-party packages (their install scripts run)",
        "pip/uv/poetry/conda, npm/pnpm/yarn/bun (also npx), apt/yum/dnf/apk/brew/pacman, gem, "
        "cargo, go install …",
    ),
    _rule(
        "network-fetch",
        "medium",
        "Network access: downloads or uploads data",
        "curl, wget, httpie, aria2c … without a pipe into a shell.",
    ),
    _rule(
        "remote-access",
        "medium",
        "Opens a connection to a remote host",
        "ssh, scp, sftp, rsync, nc, socat, telnet, ftp (remote commands of ssh are analysed).",
    ),
    _rule(
        "pipe-into-shell",
        "medium",
        "A shell runs commands read from a pipe",
        "Local output piped into sh/bash/python (echo … | sh); echoed text is analysed too.",
    ),
    _rule(
        "shell-eval",
        "medium",
        "Evaluates dynamically built code",
        "eval of variables, or nesting deeper than the analyser follows.",
    ),
    _rule("rm-recursive", "medium", "Recursive delete", "rm -r of an ordinary path, find -delete."),
    _rule("rm-file", "medium", "Deletes files", "rm, rmdir, unlink, shred of ordinary files."),
    _rule(
        "patch-delete-file",
        "medium",
        "The patch deletes a file",
        "apply_patch with *** Delete File or +++ /dev/null.",
        ("apply_patch",),
    ),
    _rule("chmod", "medium", "Changes file permissions or ownership", "chmod, chown, chgrp."),
    _rule(
        "git-destructive",
        "medium",
        "Discards work or deletes git history or branches",
        "git reset --hard, clean -f, branch -D, checkout -- ., stash drop/clear, push --delete.",
    ),
    _rule("process-kill", "medium", "Stops other processes", "kill, pkill, killall."),
    _rule(
        "service-control",
        "medium",
        "Changes system services",
        "systemctl start|stop|restart|enable|disable, service, launchctl.",
    ),
    _rule("scheduled-task", "medium", "Schedules commands to run later", "crontab, at, batch."),
    _rule("mount", "medium", "Mounts or unmounts file systems", "mount, umount, losetup."),
    _rule(
        "sensitive-path-access",
        "medium",
        "Touches a credential file",
        "A command other than a reader names a credential path (git add .env, source .env).",
    ),
    _rule(
        "history-tampering",
        "medium",
        "Hides or clears shell history",
        "history -c, unset HISTFILE, export HISTFILE=/dev/null.",
    ),
    _rule(
        "exec-elevated",
        "medium",
        "Runs with elevated host permissions",
        "exec with elevated: true.",
        ("exec",),
    ),
    _rule(
        "oversized",
        "medium",
        "Command too long to analyse completely",
        "Only the first 64 KiB of a command are analysed.",
    ),
)
"""Every rule, highest level first; within a level, the first match gives the reason."""

RULES_BY_ID: Final[dict[str, RiskRule]] = {rule.id: rule for rule in RULES}
RULE_ORDER: Final[dict[str, int]] = {rule.id: index for index, rule in enumerate(RULES)}
