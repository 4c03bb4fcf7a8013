//! Task events, published to containerd in order from one thread.

use std::sync::mpsc::{channel, Sender};
use std::time::SystemTime;

use containerd_shim::publisher::RemotePublisher;
use containerd_shim::Context;
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{MessageDyn, MessageField};
use containerd_shim_protos::topics;

pub struct Event {
    pub topic: &'static str,
    pub message: Box<dyn MessageDyn>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.topic, self.message)
    }
}

/// Where the service sends events; cheap to clone.
#[derive(Clone)]
pub struct EventSink(Sender<Event>);

pub fn timestamp(t: SystemTime) -> MessageField<Timestamp> {
    MessageField::some(Timestamp::from(t))
}

impl EventSink {
    /// A sink whose events are read by the caller (tests).
    #[cfg(test)]
    pub fn channel() -> (Self, std::sync::mpsc::Receiver<Event>) {
        let (tx, rx) = channel();
        (Self(tx), rx)
    }

    /// Publishes to containerd from a dedicated thread, in send order.
    pub fn publisher(publisher: RemotePublisher, namespace: String) -> Self {
        let (tx, rx) = channel::<Event>();
        let spawned = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                for ev in rx {
                    tracing::debug!(topic = ev.topic, "publish event");
                    if let Err(e) =
                        publisher.publish(Context::default(), ev.topic, &namespace, ev.message)
                    {
                        tracing::error!(error = %e, "publishing event");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the event publisher; events are dropped");
        }
        Self(tx)
    }

    fn send(&self, topic: &'static str, message: Box<dyn MessageDyn>) {
        if self.0.send(Event { topic, message }).is_err() {
            tracing::error!(topic, "event publisher is gone; event dropped");
        }
    }

    pub fn create(&self, ev: TaskCreate) {
        self.send(topics::TASK_CREATE_EVENT_TOPIC, Box::new(ev));
    }
    pub fn start(&self, container_id: &str, pid: i32) {
        self.send(
            topics::TASK_START_EVENT_TOPIC,
            Box::new(TaskStart {
                container_id: container_id.into(),
                pid: pid as u32,
                ..Default::default()
            }),
        );
    }
    pub fn exit(&self, container_id: &str, id: &str, pid: i32, status: u32, at: SystemTime) {
        self.send(
            topics::TASK_EXIT_EVENT_TOPIC,
            Box::new(TaskExit {
                container_id: container_id.into(),
                id: id.into(),
                pid: pid as u32,
                exit_status: status,
                exited_at: timestamp(at),
                ..Default::default()
            }),
        );
    }
    pub fn delete(&self, container_id: &str, pid: i32, status: u32, at: Option<SystemTime>) {
        self.send(
            topics::TASK_DELETE_EVENT_TOPIC,
            Box::new(TaskDelete {
                container_id: container_id.into(),
                id: container_id.into(),
                pid: pid as u32,
                exit_status: status,
                exited_at: at.map(timestamp).unwrap_or_default(),
                ..Default::default()
            }),
        );
    }
    pub fn oom(&self, container_id: &str) {
        self.send(
            topics::TASK_OOM_EVENT_TOPIC,
            Box::new(TaskOOM {
                container_id: container_id.into(),
                ..Default::default()
            }),
        );
    }
    pub fn exec_added(&self, container_id: &str, exec_id: &str) {
        self.send(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            Box::new(TaskExecAdded {
                container_id: container_id.into(),
                exec_id: exec_id.into(),
                ..Default::default()
            }),
        );
    }
    pub fn exec_started(&self, container_id: &str, exec_id: &str, pid: i32) {
        self.send(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            Box::new(TaskExecStarted {
                container_id: container_id.into(),
                exec_id: exec_id.into(),
                pid: pid as u32,
                ..Default::default()
            }),
        );
    }
    pub fn paused(&self, container_id: &str) {
        self.send(
            topics::TASK_PAUSED_EVENT_TOPIC,
            Box::new(TaskPaused {
                container_id: container_id.into(),
                ..Default::default()
            }),
        );
    }
    pub fn resumed(&self, container_id: &str) {
        self.send(
            topics::TASK_RESUMED_EVENT_TOPIC,
            Box::new(TaskResumed {
                container_id: container_id.into(),
                ..Default::default()
            }),
        );
    }
}
