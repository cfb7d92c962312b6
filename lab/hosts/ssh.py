"""The command line that reaches a host: plain `ssh`, with the user's own configuration.

The lab adds only what a program needs from SSH: no terminal (-T, so the byte stream is
clean), no prompt it could not answer (BatchMode: keys or an agent, as CI has), a bound on
connecting. Everything else (user, port, keys, jump hosts, ControlMaster) is the user's
~/.ssh/config. LAB_SSH replaces `ssh` with a compatible command, split as a shell would
(`LAB_SSH="ssh -F lab_ssh_config"`), as rsync's RSYNC_RSH does.
"""

from __future__ import annotations

import os
import shlex

from lab.topology import Host

SSH_ENV = "LAB_SSH"
CONNECT_TIMEOUT = 15  # seconds, for the TCP connection and SSH's own handshake


def ssh_command() -> list[str]:
    return shlex.split(os.environ.get(SSH_ENV, "")) or ["ssh"]


def remote_argv(host: Host, *lab_args: str) -> list[str]:
    """ARGV that runs `LAB LAB_ARGS...` on HOST. SSH joins its arguments into one line for
    the remote shell, so the lab's part is quoted here."""
    remote = shlex.join([*shlex.split(host.lab), *lab_args])
    return [*ssh_command(), "-T", "-o", "BatchMode=yes", "-o",
            f"ConnectTimeout={CONNECT_TIMEOUT}", host.ssh, "--", remote]


def describe(host: Host) -> str:
    return f"host {host.name} (ssh {host.ssh})"
