//! Task events, published to containerd in order from one thread.
//!
//! Published with our own `EventsClient` rather than the crate's
//! `RemotePublisher::publish`, and encoded through the typed `Message` API,
//! never `MessageDyn`: both of those touch `descriptor_dyn()` (for the type
//! URL, and for an error message in `write_to_bytes_dyn`), and building
//! rust-protobuf's reflection descriptors for the event protos (with
//! gogo.proto and descriptor.proto and their comments) costs every shim about
//! 0.7 MiB of heap for a constant string. The type URLs are constants here,
//! checked against the descriptors in a unit test.

use std::sync::mpsc::{channel, Sender};
use std::time::SystemTime;

use containerd_shim::Context;
use containerd_shim_protos::api::{Envelope, ForwardRequest};
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::{topics, EventsClient};

pub struct Event {
    pub topic: &'static str,
    /// The message's protobuf full name (containerd's typeurl for it).
    pub type_url: &'static str,
    /// The encoded event message.
    pub value: Vec<u8>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.topic, self.type_url)
    }
}

/// The protobuf full names of the events, as the crate's `convert_to_any` would compute them.
mod type_url {
    pub const TASK_CREATE: &str = "containerd.events.TaskCreate";
    pub const TASK_START: &str = "containerd.events.TaskStart";
    pub const TASK_EXIT: &str = "containerd.events.TaskExit";
    pub const TASK_DELETE: &str = "containerd.events.TaskDelete";
    pub const TASK_OOM: &str = "containerd.events.TaskOOM";
    pub const TASK_EXEC_ADDED: &str = "containerd.events.TaskExecAdded";
    pub const TASK_EXEC_STARTED: &str = "containerd.events.TaskExecStarted";
    pub const TASK_PAUSED: &str = "containerd.events.TaskPaused";
    pub const TASK_RESUMED: &str = "containerd.events.TaskResumed";
}

/// The envelope containerd's event service expects for `ev`.
fn forward_request(ev: Event, namespace: &str) -> ForwardRequest {
    let mut envelope = Envelope::new();
    envelope.set_topic(ev.topic.to_string());
    envelope.set_namespace(namespace.to_string());
    envelope.timestamp = timestamp(SystemTime::now());
    envelope.event = MessageField::some(Any {
        type_url: ev.type_url.to_string(),
        value: ev.value,
        ..Default::default()
    });
    let mut req = ForwardRequest::new();
    req.envelope = MessageField::some(envelope);
    req
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

    /// Publishes to containerd (its events service on `client`) from a dedicated thread, in
    /// send order.
    pub fn publisher(client: EventsClient, namespace: String) -> Self {
        let (tx, rx) = channel::<Event>();
        let spawned = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                for ev in rx {
                    let topic = ev.topic;
                    tracing::debug!(topic, "publish event");
                    let req = forward_request(ev, &namespace);
                    if let Err(e) = client.forward(Context::default(), &req) {
                        tracing::error!(error = %e, topic, "publishing event");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the event publisher; events are dropped");
        }
        Self(tx)
    }

    fn send<M: Message>(&self, topic: &'static str, type_url: &'static str, message: M) {
        let value = match message.write_to_bytes() {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(topic, error = %e, "cannot encode event; dropped");
                return;
            }
        };
        if self
            .0
            .send(Event {
                topic,
                type_url,
                value,
            })
            .is_err()
        {
            tracing::error!(topic, "event publisher is gone; event dropped");
        }
    }

    pub fn create(&self, ev: TaskCreate) {
        self.send(topics::TASK_CREATE_EVENT_TOPIC, type_url::TASK_CREATE, ev);
    }
    pub fn start(&self, container_id: &str, pid: i32) {
        self.send(
            topics::TASK_START_EVENT_TOPIC,
            type_url::TASK_START,
            TaskStart {
                container_id: container_id.into(),
                pid: pid as u32,
                ..Default::default()
            },
        );
    }
    pub fn exit(&self, container_id: &str, id: &str, pid: i32, status: u32, at: SystemTime) {
        self.send(
            topics::TASK_EXIT_EVENT_TOPIC,
            type_url::TASK_EXIT,
            TaskExit {
                container_id: container_id.into(),
                id: id.into(),
                pid: pid as u32,
                exit_status: status,
                exited_at: timestamp(at),
                ..Default::default()
            },
        );
    }
    pub fn delete(&self, container_id: &str, pid: i32, status: u32, at: Option<SystemTime>) {
        self.send(
            topics::TASK_DELETE_EVENT_TOPIC,
            type_url::TASK_DELETE,
            TaskDelete {
                container_id: container_id.into(),
                id: container_id.into(),
                pid: pid as u32,
                exit_status: status,
                exited_at: at.map(timestamp).unwrap_or_default(),
                ..Default::default()
            },
        );
    }
    pub fn oom(&self, container_id: &str) {
        self.send(
            topics::TASK_OOM_EVENT_TOPIC,
            type_url::TASK_OOM,
            TaskOOM {
                container_id: container_id.into(),
                ..Default::default()
            },
        );
    }
    pub fn exec_added(&self, container_id: &str, exec_id: &str) {
        self.send(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            type_url::TASK_EXEC_ADDED,
            TaskExecAdded {
                container_id: container_id.into(),
                exec_id: exec_id.into(),
                ..Default::default()
            },
        );
    }
    pub fn exec_started(&self, container_id: &str, exec_id: &str, pid: i32) {
        self.send(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            type_url::TASK_EXEC_STARTED,
            TaskExecStarted {
                container_id: container_id.into(),
                exec_id: exec_id.into(),
                pid: pid as u32,
                ..Default::default()
            },
        );
    }
    pub fn paused(&self, container_id: &str) {
        self.send(
            topics::TASK_PAUSED_EVENT_TOPIC,
            type_url::TASK_PAUSED,
            TaskPaused {
                container_id: container_id.into(),
                ..Default::default()
            },
        );
    }
    pub fn resumed(&self, container_id: &str) {
        self.send(
            topics::TASK_RESUMED_EVENT_TOPIC,
            type_url::TASK_RESUMED,
            TaskResumed {
                container_id: container_id.into(),
                ..Default::default()
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::MessageFull;

    #[test]
    fn type_urls_are_the_protobuf_full_names() {
        let names = [
            (type_url::TASK_CREATE, TaskCreate::descriptor()),
            (type_url::TASK_START, TaskStart::descriptor()),
            (type_url::TASK_EXIT, TaskExit::descriptor()),
            (type_url::TASK_DELETE, TaskDelete::descriptor()),
            (type_url::TASK_OOM, TaskOOM::descriptor()),
            (type_url::TASK_EXEC_ADDED, TaskExecAdded::descriptor()),
            (type_url::TASK_EXEC_STARTED, TaskExecStarted::descriptor()),
            (type_url::TASK_PAUSED, TaskPaused::descriptor()),
            (type_url::TASK_RESUMED, TaskResumed::descriptor()),
        ];
        for (url, d) in names {
            assert_eq!(url, d.full_name());
        }
    }

    #[test]
    fn envelope_carries_topic_namespace_and_encoded_event() {
        let (sink, rx) = EventSink::channel();
        sink.start("c1", 42);
        let ev = rx.recv().unwrap();
        let req = forward_request(ev, "k8s.io");
        let env = req.envelope.as_ref().unwrap();
        assert_eq!(env.topic, "/tasks/start");
        assert_eq!(env.namespace, "k8s.io");
        let any = env.event.as_ref().unwrap();
        assert_eq!(any.type_url, "containerd.events.TaskStart");
        let back: TaskStart =
            containerd_shim_protos::protobuf::Message::parse_from_bytes(&any.value).unwrap();
        assert_eq!((back.container_id.as_str(), back.pid), ("c1", 42));
        assert!(env.timestamp.is_some());
    }
}
