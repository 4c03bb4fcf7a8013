//! TEST-ONLY backend (`feature = "testing"`): runs the bundle's process
//! chrooted into `<bundle>/rootfs` with NO sandbox at all (no namespaces, no
//! seccomp, no Landlock). It exists so the shim's protocol, stdio, pty, exit
//! and event plumbing can be exercised against a real containerd without the
//! runtime library. It is never compiled into a release build.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{fork, ForkResult, Pid};

use super::backend::{Backend, CreateArgs, ExecArgs, Stdio};
use super::protocol::{CgroupPaths, CgroupStats};
use crate::error::{Error, Result};

struct Container {
    pid: i32,
    rootfs: PathBuf,
    /// Write end of the "go" pipe the init blocks on until start.
    go: Option<OwnedFd>,
}

#[derive(Default)]
pub struct HostBackend {
    containers: HashMap<String, Container>,
}

struct Launch {
    args: Vec<String>,
    env: Vec<String>,
    cwd: String,
    terminal: bool,
}

fn launch_of(process: &serde_json::Value) -> Result<Launch> {
    let strings = |key: &str| -> Vec<String> {
        process[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let args = strings("args");
    if args.is_empty() {
        return Err(Error::InvalidArgument("process.args is empty".into()));
    }
    Ok(Launch {
        args,
        env: strings("env"),
        cwd: process["cwd"].as_str().unwrap_or("/").to_string(),
        terminal: process["terminal"].as_bool().unwrap_or(false),
    })
}

impl HostBackend {
    fn spawn(
        &self,
        rootfs: &Path,
        launch: &Launch,
        console_socket: Option<&Path>,
        stdio: Stdio,
        wait_for_go: bool,
    ) -> Result<(i32, Option<OwnedFd>)> {
        let (go_r, go_w) = nix::unistd::pipe().map_err(Error::sys("pipe"))?;
        let argv: Vec<CString> = launch
            .args
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<_, _>>()
            .map_err(|_| Error::InvalidArgument("NUL in args".into()))?;
        let envp: Vec<CString> = launch
            .env
            .iter()
            .filter_map(|e| CString::new(e.as_str()).ok())
            .collect();
        let pty = if launch.terminal {
            Some(nix::pty::openpty(None, None).map_err(Error::sys("openpty"))?)
        } else {
            None
        };
        if let (Some(pty), Some(sock)) = (&pty, console_socket) {
            let stream = UnixStream::connect(sock).map_err(Error::io("connect", sock))?;
            let fds = [pty.master.as_raw_fd()];
            nix::sys::socket::sendmsg::<()>(
                stream.as_raw_fd(),
                &[std::io::IoSlice::new(b"pty")],
                &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
                nix::sys::socket::MsgFlags::empty(),
                None,
            )
            .map_err(Error::sys("send pty master"))?;
        }
        // SAFETY: the launcher is single-threaded; the child only calls
        // async-signal-safe functions before execve.
        match unsafe { fork() }.map_err(Error::sys("fork"))? {
            ForkResult::Parent { child } => {
                drop(go_r);
                Ok((child.as_raw(), wait_for_go.then_some(go_w)))
            }
            ForkResult::Child => {
                drop(go_w);
                // SAFETY: async-signal-safe libc calls between fork and
                // execve, on fds and C strings this child owns.
                unsafe {
                    libc::setsid();
                    if let Some(pty) = &pty {
                        libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCSCTTY, 0);
                        for fd in 0..=2 {
                            libc::dup2(pty.slave.as_raw_fd(), fd);
                        }
                    } else {
                        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                        for (slot, fd) in [&stdio.stdin, &stdio.stdout, &stdio.stderr]
                            .into_iter()
                            .enumerate()
                        {
                            let src = fd.as_ref().map_or(null, |f| f.as_raw_fd());
                            libc::dup2(src, slot as i32);
                        }
                    }
                    let mut b = 0u8;
                    if wait_for_go {
                        libc::read(go_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
                    }
                    let root =
                        CString::new(rootfs.as_os_str().as_encoded_bytes()).unwrap_or_default();
                    let cwd = CString::new(launch.cwd.as_str()).unwrap_or_default();
                    if libc::chroot(root.as_ptr()) != 0 || libc::chdir(cwd.as_ptr()) != 0 {
                        libc::_exit(126);
                    }
                    let mut av: Vec<*const libc::c_char> =
                        argv.iter().map(|a| a.as_ptr()).collect();
                    av.push(std::ptr::null());
                    let mut ev: Vec<*const libc::c_char> =
                        envp.iter().map(|a| a.as_ptr()).collect();
                    ev.push(std::ptr::null());
                    libc::execve(av[0], av.as_ptr(), ev.as_ptr());
                    // No PATH lookup in this test backend beyond common dirs.
                    for dir in [c"/bin/", c"/usr/bin/", c"/sbin/"] {
                        let mut full = dir.to_bytes().to_vec();
                        full.extend_from_slice(argv[0].as_bytes());
                        if let Ok(p) = CString::new(full) {
                            libc::execve(p.as_ptr(), av.as_ptr(), ev.as_ptr());
                        }
                    }
                    libc::_exit(127);
                }
            }
        }
    }

    fn get(&self, id: &str) -> Result<&Container> {
        self.containers
            .get(id)
            .ok_or_else(|| Error::ContainerNotFound(id.to_string()))
    }
}

fn signal(sig: i32) -> Result<Signal> {
    Signal::try_from(sig).map_err(|_| Error::InvalidArgument(format!("signal {sig}")))
}

impl Backend for HostBackend {
    fn create(&mut self, args: CreateArgs) -> Result<(i32, CgroupPaths)> {
        let config_path = args.bundle.join("config.json");
        let text =
            ward_runtime::bounded::read_text(&config_path, ward_runtime::bounded::Follow::No)
                .map_err(Error::io("read", &config_path))?;
        let spec: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let launch = launch_of(&spec["process"])?;
        let rootfs = args
            .bundle
            .join(spec["root"]["path"].as_str().unwrap_or("rootfs"));
        let (pid, go) = self.spawn(
            &rootfs,
            &launch,
            args.console_socket.as_deref(),
            args.stdio,
            true,
        )?;
        self.containers
            .insert(args.id, Container { pid, rootfs, go });
        Ok((pid, CgroupPaths::default()))
    }

    fn start(&mut self, id: &str) -> Result<()> {
        let c = self
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::ContainerNotFound(id.to_string()))?;
        let go = c
            .go
            .take()
            .ok_or_else(|| Error::FailedPrecondition(format!("container {id} already started")))?;
        nix::unistd::write(&go, b"g").map_err(Error::sys("write go pipe"))?;
        Ok(())
    }

    fn exec(&mut self, args: ExecArgs) -> Result<i32> {
        let rootfs = self.get(&args.id)?.rootfs.clone();
        let launch = launch_of(&args.process)?;
        let (pid, _) = self.spawn(
            &rootfs,
            &launch,
            args.console_socket.as_deref(),
            args.stdio,
            false,
        )?;
        Ok(pid)
    }

    fn kill(&mut self, id: &str, sig: i32, all: bool) -> Result<()> {
        let pid = self.get(id)?.pid;
        let target = if all { -pid } else { pid };
        kill(Pid::from_raw(target), signal(sig)?).map_err(Error::sys("kill"))
    }

    fn delete(&mut self, id: &str, _bundle: &std::path::Path) -> Result<()> {
        if let Some(c) = self.containers.remove(id) {
            let _ = kill(Pid::from_raw(-c.pid), Signal::SIGKILL);
        }
        Ok(())
    }

    fn pause(&mut self, id: &str) -> Result<()> {
        self.kill(id, Signal::SIGSTOP as i32, true)
    }

    fn resume(&mut self, id: &str) -> Result<()> {
        self.kill(id, Signal::SIGCONT as i32, true)
    }

    fn update(&mut self, id: &str, _resources: &serde_json::Value) -> Result<()> {
        self.get(id).map(|_| ())
    }

    fn pids(&mut self, id: &str) -> Result<Vec<i32>> {
        Ok(vec![self.get(id)?.pid])
    }

    fn stats(&mut self, id: &str) -> Result<CgroupStats> {
        self.get(id)?;
        Ok(CgroupStats {
            pids_current: 1,
            ..Default::default()
        })
    }
}
