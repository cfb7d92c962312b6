"""Labs that span hosts (docs/multihost.md): a topology's `hosts:` names the machines, each
node's `host:` says where its namespace is made, and links between hosts are of the kinds that
leave the machine (vxlan, phys: lab/links/).

The machine running `lab up` is `local`; every other host is driven over plain SSH with the
user's own SSH configuration: `ssh DEST LAB remote` starts the lab there as an agent that
speaks JSON lines on its stdin and stdout (lab/commands/remote.py), one connection per host
for the life of the command. Over it the local lab checks that the host runs the same version
of the lab, has its part checked there before anything is made anywhere, has the part made
(recorded in that host's own journal), starts and watches processes in its nodes (traffic
steps run on the host of their node), and tears the part down.

  ssh.py       the SSH command line for a host (LAB_SSH replaces `ssh`, as rsync's -e)
  session.py   a connection to one host's agent: requests, answers, process events
  process.py   a process in a node of another host, as much of subprocess.Popen as the lab uses
  wire.py      what goes over the connection: frames, errors
"""
