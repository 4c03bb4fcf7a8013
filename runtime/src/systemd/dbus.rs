//! The D-Bus calls to `org.freedesktop.systemd1.Manager`, with zbus on a current-thread tokio
//! runtime. Runs only in the short-lived helper process of [`super::helper`]: Ward's own
//! process never holds a D-Bus connection or a runtime thread (it forks the container later).

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use zbus::message::Type;
use zbus::zvariant::{OwnedObjectPath, Value};
use zbus::{Connection, MatchRule, MessageStream};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// How long a job (start or stop of the scope) may take before Ward gives up on it.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// Where systemd is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// systemd's own socket (`/run/systemd/private`): peer-to-peer, no bus daemon.
    Private(PathBuf),
    /// A bus (the system bus), systemd by its well-known name.
    Bus(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Private(p) => write!(f, "unix:path={} (peer-to-peer)", p.display()),
            Endpoint::Bus(p) => write!(f, "unix:path={} (bus)", p.display()),
        }
    }
}

/// What went wrong, as the helper reports it to Ward (see [`super::helper`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No endpoint answered.
    Connect(String),
    /// systemd has a unit of that name already (`UnitExists`).
    Exists(String),
    /// A method call failed.
    Call { op: &'static str, reason: String },
    /// The job ended with a result other than "done" (or never ended).
    Job { op: &'static str, result: String },
}

/// One connection to systemd; `bus` when it goes through a bus daemon.
struct Systemd {
    conn: Connection,
    bus: bool,
}

/// A `(sv)` property of a transient unit.
pub type Property = (&'static str, Value<'static>);

impl Systemd {
    /// The first endpoint that accepts a connection.
    async fn connect(endpoints: &[Endpoint]) -> Result<Self, Failure> {
        let mut tried = vec![];
        for e in endpoints {
            let (path, bus) = match e {
                Endpoint::Private(p) => (p, false),
                Endpoint::Bus(p) => (p, true),
            };
            let addr = format!("unix:path={}", path.display());
            let built = match zbus::connection::Builder::address(addr.as_str()) {
                Ok(b) if bus => b.build().await,
                Ok(b) => b.p2p().build().await,
                Err(e) => Err(e),
            };
            match built {
                Ok(conn) => return Ok(Self { conn, bus }),
                Err(err) => tried.push(format!("{e}: {err}")),
            }
        }
        Err(Failure::Connect(tried.join("; ")))
    }

    async fn call<B>(&self, method: &'static str, body: &B) -> zbus::Result<zbus::Message>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        // systemd ignores the destination on its private socket; a bus needs it.
        let dest = self.bus.then_some(DEST);
        self.conn
            .call_method(dest, PATH, Some(MANAGER), method, body)
            .await
    }

    /// The JobRemoved signals, subscribed to before any job is queued (a signal may arrive
    /// before the method's reply).
    async fn job_signals(&self) -> Result<MessageStream, Failure> {
        let call = |e: zbus::Error| Failure::Call {
            op: "Subscribe",
            reason: e.to_string(),
        };
        let rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .interface(MANAGER)
            .and_then(|r| r.member("JobRemoved"))
            .map_err(call)?
            .build();
        let stream = MessageStream::for_match_rule(rule, &self.conn, Some(64))
            .await
            .map_err(call)?;
        // On a bus systemd sends signals only to subscribers; on the private socket always.
        self.call("Subscribe", &()).await.map_err(call)?;
        Ok(stream)
    }
}

/// Wait for `job`'s JobRemoved; its result.
async fn job_result(stream: &mut MessageStream, job: &OwnedObjectPath) -> Option<String> {
    let wait = async {
        while let Some(Ok(msg)) = stream.next().await {
            let body = msg.body();
            if let Ok((_, path, _, result)) =
                body.deserialize::<(u32, OwnedObjectPath, String, String)>()
            {
                if &path == job {
                    return Some(result);
                }
            }
        }
        None
    };
    tokio::time::timeout(JOB_TIMEOUT, wait).await.ok().flatten()
}

fn error_name(e: &zbus::Error) -> Option<String> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.to_string()),
        _ => None,
    }
}

/// StartTransientUnit(`unit`, "fail", `props`) and wait for its job. `mode` "fail" makes
/// systemd refuse a unit that exists. A job that does not end in "done" leaves a unit that is
/// this call's: it is stopped again before the failure is returned.
pub async fn start_scope(
    endpoints: &[Endpoint],
    unit: &str,
    props: Vec<Property>,
) -> Result<(), Failure> {
    let sd = Systemd::connect(endpoints).await?;
    let mut jobs = sd.job_signals().await?;
    let aux: Vec<(&str, Vec<Property>)> = vec![];
    let reply = sd
        .call("StartTransientUnit", &(unit, "fail", props, aux))
        .await;
    let reply = match reply {
        Ok(r) => r,
        Err(e) if error_name(&e).as_deref() == Some("org.freedesktop.systemd1.UnitExists") => {
            return Err(Failure::Exists(e.to_string()))
        }
        Err(e) => {
            return Err(Failure::Call {
                op: "StartTransientUnit",
                reason: e.to_string(),
            })
        }
    };
    let job: OwnedObjectPath = reply.body().deserialize().map_err(|e| Failure::Call {
        op: "StartTransientUnit",
        reason: format!("reply: {e}"),
    })?;
    match job_result(&mut jobs, &job).await.as_deref() {
        Some("done") => Ok(()),
        other => {
            let result = other.unwrap_or("no JobRemoved signal in time").to_string();
            let _ = stop_with(&sd, &mut jobs, unit).await;
            Err(Failure::Job {
                op: "start",
                result,
            })
        }
    }
}

/// StopUnit(`unit`, "replace"), wait for its job, then ResetFailedUnit. A unit systemd does
/// not know (already gone) is fine.
pub async fn stop_scope(endpoints: &[Endpoint], unit: &str) -> Result<(), Failure> {
    let sd = Systemd::connect(endpoints).await?;
    let mut jobs = sd.job_signals().await?;
    stop_with(&sd, &mut jobs, unit).await
}

async fn stop_with(sd: &Systemd, jobs: &mut MessageStream, unit: &str) -> Result<(), Failure> {
    const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
    match sd.call("StopUnit", &(unit, "replace")).await {
        Ok(reply) => {
            let job: OwnedObjectPath = reply.body().deserialize().map_err(|e| Failure::Call {
                op: "StopUnit",
                reason: format!("reply: {e}"),
            })?;
            match job_result(jobs, &job).await.as_deref() {
                Some("done") => {}
                other => {
                    return Err(Failure::Job {
                        op: "stop",
                        result: other.unwrap_or("no JobRemoved signal in time").to_string(),
                    })
                }
            }
        }
        Err(e) if error_name(&e).as_deref() == Some(NO_SUCH_UNIT) => return Ok(()),
        Err(e) => {
            return Err(Failure::Call {
                op: "StopUnit",
                reason: e.to_string(),
            })
        }
    }
    // A scope that failed stays loaded as "failed" until reset: the name would stay taken.
    match sd.call("ResetFailedUnit", &(unit,)).await {
        Ok(_) => Ok(()),
        Err(e) if error_name(&e).as_deref() == Some(NO_SUCH_UNIT) => Ok(()),
        Err(e) => Err(Failure::Call {
            op: "ResetFailedUnit",
            reason: e.to_string(),
        }),
    }
}

/// SetUnitProperties(`unit`, runtime, `props`): no job, the reply says it is done.
pub async fn set_properties(
    endpoints: &[Endpoint],
    unit: &str,
    props: Vec<Property>,
) -> Result<(), Failure> {
    let sd = Systemd::connect(endpoints).await?;
    sd.call("SetUnitProperties", &(unit, true, props))
        .await
        .map(drop)
        .map_err(|e| Failure::Call {
            op: "SetUnitProperties",
            reason: e.to_string(),
        })
}

/// Run `f` on a current-thread runtime (no thread besides the caller's), bounded: a peer that
/// accepts the connection and then never answers must not hold a create forever.
pub fn block_on<F>(f: F) -> Result<Result<(), Failure>, String>
where
    F: std::future::Future<Output = Result<(), Failure>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let limit = JOB_TIMEOUT * 2;
    Ok(rt.block_on(async {
        tokio::time::timeout(limit, f).await.unwrap_or_else(|_| {
            Err(Failure::Call {
                op: "D-Bus",
                reason: format!("no answer from systemd in {}s", limit.as_secs()),
            })
        })
    }))
}
