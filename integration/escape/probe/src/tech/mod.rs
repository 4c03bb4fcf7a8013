//! The registry of techniques: id, the THREATS.md line it covers, and
//! whether it must be skipped in the runner's unconfined host mode.

mod creds;
mod dev;
mod fs;
mod kernel;
mod links;
mod mounts;
mod ns;
mod procfs;
mod resources;
mod volumes;

pub use links::race_flip;

use crate::report::Outcome;
use crate::Ctx;

pub struct Technique {
    pub id: &'static str,
    pub threat: &'static str,
    pub tried: &'static str,
    /// Never run unconfined on the host, even in a throwaway namespace.
    pub unsafe_on_host: bool,
    pub run: fn(&Ctx) -> Outcome,
}

const fn t(id: &'static str, threat: &'static str, run: fn(&Ctx) -> Outcome) -> Technique {
    Technique {
        id,
        threat,
        tried: id,
        unsafe_on_host: false,
        run,
    }
}

const fn unsafe_host(mut x: Technique) -> Technique {
    x.unsafe_on_host = true;
    x
}

pub static ALL: &[Technique] = &[
    t("userns-unshare", "nested-userns", ns::userns_unshare),
    t("userns-clone", "nested-userns", ns::userns_clone),
    t("userns-clone3", "nested-userns", ns::userns_clone3),
    t("userns-max-raise", "nested-userns", ns::userns_max_raise),
    t(
        "userns-netns-packet",
        "raw-packet-sockets",
        ns::userns_packet,
    ),
    t("mount-tmpfs", "mount-family", mounts::mount_tmpfs),
    t("rootfs-write", "rootfs-write", fs::rootfs_write),
    t(
        "mount-remount-rootfs-rw",
        "mount-family",
        mounts::mount_remount_rw,
    ),
    t("umount2", "mount-family", mounts::umount2),
    t("pivot-root", "mount-family", mounts::pivot_root),
    t("fsopen", "mount-family", mounts::fsopen_t),
    t("fsconfig", "mount-family", mounts::fsconfig),
    t("fsmount", "mount-family", mounts::fsmount),
    t("move-mount", "mount-family", mounts::move_mount),
    t("open-tree", "mount-family", mounts::open_tree),
    t("mount-setattr", "mount-family", mounts::mount_setattr),
    t(
        "cgroup-v1-mount",
        "cgroup-release-agent",
        mounts::cgroup_mount,
    ),
    t(
        "cgroup-release-agent",
        "cgroup-release-agent",
        mounts::cgroup_release_agent,
    ),
    t(
        "cgroup-notify-on-release",
        "cgroup-release-agent",
        mounts::cgroup_notify,
    ),
    t("setns-proc-ns", "setns-host", ns::setns_proc),
    t("setns-pidfd", "setns-host", ns::setns_pidfd),
    t("bpf", "kernel-surface", kernel::bpf),
    t("perf-event-open", "kernel-surface", kernel::perf_event_open),
    t("userfaultfd", "kernel-surface", kernel::userfaultfd),
    t("io-uring", "kernel-surface", kernel::io_uring),
    t("keyctl", "kernel-surface", kernel::keyctl),
    t("add-key", "kernel-surface", kernel::add_key),
    t("request-key", "kernel-surface", kernel::request_key),
    t("kexec-load", "kernel-surface", kernel::kexec_load),
    t("init-module", "kernel-surface", kernel::init_module),
    t("delete-module", "kernel-surface", kernel::delete_module),
    t(
        "open-by-handle-at",
        "kernel-surface",
        kernel::open_by_handle_at,
    ),
    t("ptrace-host", "kernel-surface", creds::ptrace_host),
    t("process-vm-rw", "kernel-surface", creds::process_vm),
    t("pidfd-getfd", "kernel-surface", creds::pidfd_getfd),
    t("iopl", "kernel-surface", kernel::iopl),
    t("ioperm", "kernel-surface", kernel::ioperm),
    t("swapon", "kernel-surface", kernel::swapon),
    t("reboot", "kernel-surface", kernel::reboot),
    t("settimeofday", "kernel-surface", kernel::settimeofday),
    unsafe_host(t("clock-settime", "kernel-surface", kernel::clock_settime)),
    t("adjtimex", "kernel-surface", kernel::adjtimex),
    t("acct", "kernel-surface", kernel::acct),
    t("quotactl", "kernel-surface", kernel::quotactl),
    t("lookup-dcookie", "kernel-surface", kernel::lookup_dcookie),
    t("syslog", "kernel-surface", kernel::syslog),
    t("personality", "kernel-surface", kernel::personality),
    t(
        "splice-page-cache",
        "page-cache-bugs",
        kernel::splice_surface,
    ),
    t(
        "proc-exe-overwrite",
        "runtime-exe-overwrite",
        procfs::proc_exe,
    ),
    t("leaked-fd", "leaked-fd-cwd", procfs::leaked_fd),
    t("cwd-outside-rootfs", "leaked-fd-cwd", procfs::cwd_outside),
    t(
        "symlink-mount-target",
        "symlink-races",
        links::symlink_mount_target,
    ),
    t(
        "symlink-mount-dest",
        "symlink-races",
        links::symlink_mount_dest,
    ),
    t(
        "symlink-mount-volume",
        "symlink-races",
        links::symlink_mount_volume,
    ),
    t(
        "symlink-mount-race",
        "symlink-races",
        links::symlink_mount_race,
    ),
    t(
        "symlink-proc-target",
        "symlink-races",
        links::symlink_proc_target,
    ),
    t(
        "symlink-dev-target",
        "symlink-races",
        links::symlink_dev_target,
    ),
    t("core-pattern", "proc-sys-masks", procfs::core_pattern),
    t("sysrq-trigger", "proc-sys-masks", procfs::sysrq),
    t("proc-sys-vm", "proc-sys-masks", procfs::proc_sys_vm),
    t("kcore", "proc-sys-masks", procfs::kcore),
    t("kallsyms", "proc-sys-masks", procfs::kallsyms),
    t("sys-firmware", "proc-sys-masks", procfs::sys_firmware),
    t(
        "sys-kernel-write",
        "proc-sys-masks",
        procfs::sys_kernel_write,
    ),
    t("mknod-char", "devices", dev::mknod_char),
    t("mknod-block", "devices", dev::mknod_block),
    t("host-disks", "devices", dev::host_disks),
    t("dev-kmsg", "devices", dev::dev_kmsg),
    t("no-new-privs", "setuid", creds::no_new_privs),
    t("setuid-exec", "setuid", creds::setuid_exec),
    t("file-caps-exec", "setuid", creds::file_caps_exec),
    t("raw-socket", "raw-packet-sockets", dev::raw_socket),
    t("packet-socket", "raw-packet-sockets", dev::packet_socket),
    t("host-sockets", "host-sockets", dev::host_sockets),
    t("abstract-socket", "host-sockets", dev::abstract_socket),
    t("ro-volume-write", "volume-links", volumes::ro_volume_write),
    t(
        "volume-setuid-plant",
        "volume-links",
        volumes::volume_setuid_plant,
    ),
    t(
        "volume-hardlink-out",
        "volume-links",
        volumes::volume_hardlink_out,
    ),
    t(
        "volume-symlink-out",
        "volume-links",
        volumes::volume_symlink_out,
    ),
    t("capabilities", "capabilities", creds::capabilities),
    t("uid0-host-root", "capabilities", creds::uid_map),
    t("fork-bomb", "resource-exhaustion", resources::fork_bomb),
    t("memory-hog", "resource-exhaustion", resources::memory_hog),
    t("tmpfs-fill", "resource-exhaustion", resources::tmpfs_fill),
    t("cpu-spin", "resource-exhaustion", resources::cpu_spin),
];
