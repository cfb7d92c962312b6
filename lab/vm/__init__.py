"""A kernel VM runner: run a command under another kernel, with the host's files.

This machine's kernel may lack what a test needs (netkit, netem as a module); datapath
developers test across kernels in VMs, and so does the lab. `run()` boots a Debian cloud
kernel (bookworm-backports' linux-image-cloud-amd64 by default) in QEMU with the host's `/`
shared read-only over virtio-fs, runs one command as PID 1's child, passes its output and exit
code back, and leaves nothing running:

    from lab import vm
    r = vm.run(["ip", "link", "add", "type", "netkit"], kernel="6.12", text=True)
    r.returncode, r.stdout, r.accel, r.kernel, r.boot_seconds

Under emulation a boot costs about 3 s to the command and Python's start-up a few seconds
more, so batch work into one run. Modules: archive (Debian index and .debs), kernels (the cache), guest (the
guest's set-up and its init), qemu (command lines), runner (the run), cli (`lab vm`).
"""

from lab.vm.guest import precompile
from lab.vm.kernels import Kernel, KernelCache
from lab.vm.runner import VmCommandError, VmError, VmResult, VmTimeout, run

__all__ = ["Kernel", "KernelCache", "VmCommandError", "VmError", "VmResult", "VmTimeout",
           "precompile", "run"]
