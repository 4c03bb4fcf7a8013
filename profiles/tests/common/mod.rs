//! Test helpers: a classic-BPF interpreter for seccomp programs and a way to run code
//! under a filter in a throwaway thread.

#![allow(dead_code)]

use seccompiler::sock_filter;
use ward_profiles::{Action, Arch};

pub const RET_ALLOW: u32 = 0x7fff_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;

pub fn audit_arch(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => 62 | 0x8000_0000 | 0x4000_0000,
        Arch::Aarch64 => 183 | 0x8000_0000 | 0x4000_0000,
    }
}

/// Run a seccomp BPF program on `struct seccomp_data`.
pub fn run(prog: &[sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
    let word = |off: u32| -> u32 {
        match off {
            0 => nr,
            4 => arch,
            8 | 12 => 0,
            o if (16..64).contains(&o) => {
                let a = args[((o - 16) / 8) as usize];
                if (o - 16) % 8 == 0 {
                    a as u32
                } else {
                    (a >> 32) as u32
                }
            }
            o => panic!("load from offset {o}"),
        }
    };
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let i = &prog[pc];
        pc += 1;
        match i.code {
            0x20 => acc = word(i.k),
            0x54 => acc &= i.k,
            0x05 => pc += i.k as usize,
            0x15 | 0x25 | 0x35 | 0x45 => {
                let t = match i.code {
                    0x15 => acc == i.k,
                    0x25 => acc > i.k,
                    0x35 => acc >= i.k,
                    _ => acc & i.k != 0,
                };
                pc += if t { i.jt as usize } else { i.jf as usize };
            }
            0x06 => return i.k,
            c => panic!("unsupported BPF opcode {c:#x}"),
        }
    }
}

pub fn ret_of(a: Action) -> u32 {
    match a {
        Action::Allow => RET_ALLOW,
        Action::Log => RET_LOG,
        Action::Errno(n) => RET_ERRNO | n,
        Action::Kill => RET_KILL_PROCESS,
    }
}

/// Install `filters` on a fresh thread, run `body` there, return its result. The filter
/// dies with the thread; the test runner's threads are never filtered.
pub fn under_filter<T: Send + 'static>(
    filters: Vec<seccompiler::BpfProgram>,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        for f in &filters {
            seccompiler::apply_filter(f).expect("apply filter");
        }
        body()
    })
    .join()
    .expect("filtered thread")
}

/// Raw syscall returning Ok(ret) or Err(errno).
pub fn sys(nr: libc::c_long, args: [u64; 6]) -> Result<i64, i32> {
    // SAFETY: the calls tested take integer arguments or null pointers only; none of them
    // writes through a pointer we pass.
    let r = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r as i64)
    }
}
