"""Guests wired to each other (lab vm, for the two-host tests), without booting anything:
QEMU's NIC options and the guest loading its NIC driver before the command runs."""

from __future__ import annotations

import os

import pytest

from lab.errors import UsageError
from lab.vm import guest, kernels, qemu


def spec(**kw) -> qemu.MachineSpec:
    return qemu.MachineSpec(kernel_image="/k/vmlinux", init="/k/init", job="/r/job",
                            accel="tcg", mem_mib=512, cpus=2, console_log="/r/console.log",
                            ctl_socket="/r/ctl.sock", fs_sockets=[("lab-root", "/r/root.sock")],
                            **kw)


def test_each_nic_is_a_virtio_nic_whose_wire_is_a_unix_datagram_socket():
    nics = [qemu.Nic("/d/a0.sock", "/d/b0.sock", "52:54:00:00:0a:00"),
            qemu.Nic("/d/a1.sock", "/d/b1.sock", "52:54:00:00:0a:01")]
    argv = qemu.qemu_argv(spec(nics=nics))
    netdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-netdev"]
    assert netdevs == [
        "dgram,id=net0,local.type=unix,local.path=/d/a0.sock,remote.type=unix,"
        "remote.path=/d/b0.sock",
        "dgram,id=net1,local.type=unix,local.path=/d/a1.sock,remote.type=unix,"
        "remote.path=/d/b1.sock"]
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    assert "virtio-net-pci,netdev=net0,mac=52:54:00:00:0a:00" in devices
    assert "virtio-net-pci,netdev=net1,mac=52:54:00:00:0a:01" in devices
    assert "-netdev" not in qemu.qemu_argv(spec())  # -nodefaults: no NIC unless asked


def test_a_socket_path_qemu_would_split_is_refused():
    with pytest.raises(UsageError, match="cannot contain a comma"):
        qemu.qemu_argv(spec(nics=[qemu.Nic("/d/a,0.sock", "/d/b0.sock", "52:54:00:00:0a:00")]))


@pytest.fixture
def kernel(tmp_path) -> kernels.Kernel:
    release = "6.12.95+deb12-cloud-amd64"
    k = kernels.Kernel(release, "6.12.95-1~bpo12+1", str(tmp_path / release))
    os.makedirs(k.modules)
    with open(os.path.join(k.modules, "modules.dep"), "w") as f:
        f.write("kernel/fs/overlayfs/overlay.ko.xz:\n"
                "kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz\n"
                "kernel/net/core/failover.ko.xz:\n"
                "kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz\n")
    with open(os.path.join(k.modules, "config"), "w") as f:
        f.write("CONFIG_FAILOVER=m\nCONFIG_NET_FAILOVER=m\nCONFIG_VIRTIO_NET=m\n")
    return k


def test_the_nic_driver_is_loaded_before_the_command(kernel):
    records = guest.setup_records(kernel, [], [], modules=guest.NIC_MODULES)
    # (overlay too, on a machine without /lib/modules: lab vm's own set-up)
    loaded = [os.path.basename(r[1]) for r in records if r[0] == "insmod"
              and "overlay" not in r[1]]
    assert loaded == ["failover.ko.xz", "net_failover.ko.xz", "virtio_net.ko.xz"]
    assert not [r for r in guest.setup_records(kernel, [], []) if r[0] == "insmod"
                and "virtio" in r[1]]


def test_a_driver_built_in_is_not_loaded(kernel):
    with open(kernel.config_path, "w") as f:
        f.write("CONFIG_FAILOVER=y\nCONFIG_NET_FAILOVER=y\nCONFIG_VIRTIO_NET=y\n")
    records = guest.setup_records(kernel, [], [], modules=guest.NIC_MODULES)
    assert not [r for r in records if r[0] == "insmod" and "virtio" in r[1]]
