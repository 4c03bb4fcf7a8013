//! containerd's shim lifecycle (`start`, serve, `delete`) on the
//! containerd-shim 0.10 crate, sync flavour: the ttrpc server is thread-based
//! and the crate calls `Shim::new` from a still single-threaded `main`, but
//! the launcher is forked even earlier, in our own `main` (see launcher/mod.rs).

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use containerd_shim::api::DeleteResponse;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::util::write_address;
use containerd_shim::{socket_address, spawn, Config, ExitSignal, Flags, StartOpts};
use containerd_shim_protos::{ttrpc, EventsClient};

use crate::events::{timestamp, EventSink};
use crate::launcher::client::Launcher;
use crate::launcher::protocol::Request;
use crate::launcher::LauncherProcess;
use crate::process::ExitTable;
use crate::service::Service;
use crate::task::TaskService;
use crate::watch::Watch;

pub const RUNTIME_ID: &str = "io.containerd.ward.v2";

/// The annotation CRI puts on every container of a pod.
const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";

/// The launcher forked by `main` before the crate's code runs.
static LAUNCHER: OnceLock<Mutex<Option<LauncherProcess>>> = OnceLock::new();

pub fn set_launcher(launcher: LauncherProcess) {
    let slot = LAUNCHER.get_or_init(|| Mutex::new(None));
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(launcher);
}

fn take_launcher() -> Option<LauncherProcess> {
    LAUNCHER
        .get()
        .and_then(|m| m.lock().unwrap_or_else(|e| e.into_inner()).take())
}

pub struct WardShim {
    id: String,
    namespace: String,
    bundle: PathBuf,
    /// containerd's `-debug` (a respawned launcher logs at the same level).
    debug: bool,
    exit: Arc<ExitSignal>,
}

fn fatal(what: &str, e: &dyn std::fmt::Display) -> ! {
    tracing::error!(error = %e, "{what}");
    std::process::exit(1);
}

/// The shim groups containers of one pod: the sandbox id if the bundle's
/// config.json carries CRI's annotation, else the container's own id.
pub fn grouping_id(config_json: &str, id: &str) -> String {
    serde_json::from_str::<serde_json::Value>(config_json)
        .ok()
        .and_then(|spec| {
            spec["annotations"][SANDBOX_ID_ANNOTATION]
                .as_str()
                .map(String::from)
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| id.to_string())
}

/// A client of containerd's events service at `$TTRPC_ADDRESS` (set by containerd).
fn events_client() -> Result<EventsClient, String> {
    let address = std::env::var("TTRPC_ADDRESS").map_err(|e| format!("TTRPC_ADDRESS: {e}"))?;
    let url = if address.contains("://") {
        address.clone()
    } else {
        format!("unix://{address}")
    };
    ttrpc::Client::connect(&url)
        .map(EventsClient::new)
        .map_err(|e| format!("connect {address}: {e}"))
}

/// The `delete` action also runs for a shim that died (SIGKILL, OOM kill): its socket, named
/// in the bundle's `address` file, is then left behind. Remove it when nothing answers on it
/// any more (connection refused); a socket some shim still serves is left alone.
fn remove_stale_socket(bundle: &std::path::Path) {
    let Ok(address) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let path = PathBuf::from(
        address
            .trim()
            .strip_prefix("unix://")
            .unwrap_or(address.trim()),
    );
    if !path.starts_with("/run/containerd/s") {
        return;
    }
    match UnixStream::connect(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(socket = %path.display(), "removed the dead shim's socket")
                }
                Err(e) => {
                    tracing::warn!(socket = %path.display(), error = %e, "cannot remove the dead shim's socket")
                }
            }
        }
        _ => {}
    }
}

/// True when a shim already serves `address` (e.g. the pod's sandbox shim).
fn is_serving(address: &str) -> bool {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    UnixStream::connect(path).is_ok()
}

impl containerd_shim::Shim for WardShim {
    type T = TaskService;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        let bundle = if args.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&args.bundle)
        };
        WardShim {
            id: args.id.clone(),
            namespace: args.namespace.clone(),
            bundle,
            debug: args.debug,
            exit: Arc::new(ExitSignal::default()),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let config = ward_runtime::bounded::read_text(
            &self.bundle.join("config.json"),
            ward_runtime::bounded::Follow::No,
        )
        .unwrap_or_default();
        let grouping = grouping_id(&config, &opts.id);
        let address = socket_address(&opts.address, &opts.namespace, &grouping);
        if grouping != opts.id && is_serving(&address) {
            tracing::info!(id = %opts.id, pod = %grouping, "joining the pod's shim");
        } else {
            let (_pid, spawned) = spawn(opts, &grouping, Vec::new())?;
            if spawned != address {
                return Err(containerd_shim::Error::Other(format!(
                    "shim address {spawned} differs from {address}"
                )));
            }
        }
        // containerd reads ./address to find (and later clean up) the socket.
        write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        // The crate has started a thread by now; the launcher forked in main
        // does the deleting (the runtime library may fork).
        let launcher = take_launcher()
            .ok_or_else(|| containerd_shim::Error::Other("no launcher for delete".into()))?;
        let client = Launcher::new(launcher, |_, _| {}, |_| {})
            .map_err(|e| containerd_shim::Error::Other(e.to_string()))?;
        let request = Request::Delete {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
        };
        client
            .call(request, Vec::new())
            .map_err(|e| containerd_shim::Error::Other(e.to_string()))?;
        remove_stale_socket(&self.bundle);
        tracing::info!(id = %self.id, "delete action done");
        Ok(DeleteResponse {
            pid: 0,
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: timestamp(SystemTime::now()),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> TaskService {
        // Our own events client (see events.rs); the crate's publisher connection closes.
        drop(publisher);
        let client = match events_client() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot connect to containerd's events service");
                std::process::exit(1);
            }
        };
        let events = EventSink::publisher(client, self.namespace.clone());
        let (exit_tx, exit_rx) = channel::<(i32, i32)>();
        let exits = Arc::new(ExitTable::new(exit_tx.clone()));
        let watch = match Watch::subscribe(exit_tx) {
            Ok(w) => w,
            Err(e) => fatal("cannot watch the launcher", &e),
        };
        {
            let (exits, events) = (exits.clone(), events.clone());
            let spawned = std::thread::Builder::new()
                .name("exits".into())
                .spawn(move || {
                    for (pid, code) in exit_rx {
                        exits.dispatch(pid, code, &events);
                    }
                });
            if let Err(e) = spawned {
                fatal("cannot start the exit thread", &e);
            }
        }
        let Some(process) = take_launcher() else {
            tracing::error!("no launcher: main did not fork one");
            std::process::exit(1);
        };
        let launcher = match watch.factory().connect(process) {
            Ok(l) => l,
            Err(e) => fatal("cannot talk to the launcher", &e),
        };
        let service = Arc::new(Service::new(
            launcher,
            events.clone(),
            exits.clone(),
            self.exit.clone(),
        ));
        let watching = watch.start(
            service.clone(),
            exits,
            events,
            self.namespace.clone(),
            self.debug,
        );
        if let Err(e) = watching {
            fatal("cannot watch the launcher", &e);
        }
        TaskService::new(service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_containers_group_by_sandbox_id() {
        let cfg = r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1","io.kubernetes.cri.container-type":"container"}}"#;
        assert_eq!(grouping_id(cfg, "c1"), "pod1");
        assert_eq!(grouping_id(r#"{"annotations":{}}"#, "c1"), "c1");
        assert_eq!(grouping_id("not json", "c1"), "c1");
    }
}
