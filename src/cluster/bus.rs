//! The cluster's event bus, its message logic (sans-IO; [`super::relay`] is its Redis
//! shell): every node publishes the events of the rooms it hosts on one Redis pub/sub
//! channel, rendered once with its own name (`Focus`, `Node`), and shows its WebSocket
//! clients what the other nodes publish, so any node's WebSocket serves any conference.
//!
//! No loop can form and nothing arrives twice: a node publishes only its own control
//! plane's events, never what it received (that goes to its WebSocket clients alone), and
//! drops its own publications when Redis echoes them back (its clients had them locally).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::api::events::{ConferenceEvent, RenderedEvent};

/// The one channel all nodes publish on and subscribe to.
pub const CHANNEL: &str = "chorus:events";
/// A larger message is neither sent nor taken. An event is a few kilobytes even with a
/// member's custom variables, which arrive in API bodies of at most 64 KiB.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// What travels on the channel: the publishing node and the event as it rendered it.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    node: Cow<'a, str>,
    event: Cow<'a, RenderedEvent>,
}

/// One node's end of the bus.
#[derive(Debug, Clone)]
pub struct Bus {
    node: String,
    max: usize,
}

/// What became of a message from the channel.
#[derive(Debug, PartialEq)]
pub enum Received {
    /// Another node's event, for this node's WebSocket clients.
    Event(RenderedEvent),
    /// This node's own publication, echoed: its clients had it already.
    Own,
    /// Oversized or unreadable (why, for the log); counted, not delivered.
    Refused(String),
}

impl Bus {
    pub fn new(node: &str) -> Self {
        Self::with_max(node, MAX_MESSAGE)
    }

    fn with_max(node: &str, max: usize) -> Self {
        Bus {
            node: node.to_owned(),
            max,
        }
    }

    /// The message publishing `event`, of a room this node hosts; `None` when it would
    /// exceed the cap (no node would take it).
    pub fn publish(&self, event: &ConferenceEvent) -> Option<Vec<u8>> {
        let wire = Wire {
            node: Cow::Borrowed(&self.node),
            event: Cow::Owned(event.rendered(&self.node)),
        };
        let bytes = serde_json::to_vec(&wire).ok()?;
        (bytes.len() <= self.max).then_some(bytes)
    }

    /// Reads a message from the channel.
    pub fn receive(&self, payload: &[u8]) -> Received {
        if payload.len() > self.max {
            return Received::Refused(format!("{} bytes, over {}", payload.len(), self.max));
        }
        match serde_json::from_slice::<Wire>(payload) {
            Ok(wire) if wire.node == self.node => Received::Own,
            Ok(wire) => Received::Event(wire.event.into_owned()),
            Err(e) => Received::Refused(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::events::EventName;
    use std::time::SystemTime;

    fn destroy(conference: &str, failure: Option<(String, String)>) -> ConferenceEvent {
        let now = SystemTime::now();
        ConferenceEvent {
            name: EventName::ConferenceDestroy,
            account_id: "acc1".into(),
            conference_id: conference.into(),
            conference_name: "standup".into(),
            instance_id: "uuid-1".into(),
            profile: "default".into(),
            members: 0,
            started_at: now,
            at: now,
            participant: None,
            msg_id: "msg-1".into(),
            failure,
        }
    }

    #[test]
    fn another_node_gets_the_event_as_its_host_rendered_it() {
        let (node1, node2) = (Bus::new("node1"), Bus::new("node2"));
        let event = destroy("7101", None);
        let message = node1.publish(&event).expect("small enough");
        let Received::Event(got) = node2.receive(&message) else {
            panic!("node2 delivers node1's event");
        };
        assert_eq!(got, event.rendered("node1"));
        let shown = got.snake_json();
        assert_eq!(
            (&shown["focus"], &shown["node"], &shown["conference_id"]),
            (
                &serde_json::json!("node1"),
                &serde_json::json!("node1"),
                &serde_json::json!("7101")
            )
        );
        assert_eq!(
            got.routing_key(),
            "conference.event.conference-destroy.acc1.7101.7101"
        );
    }

    #[test]
    fn a_node_never_delivers_its_own_publication() {
        let node1 = Bus::new("node1");
        let message = node1.publish(&destroy("7101", None)).unwrap();
        assert_eq!(node1.receive(&message), Received::Own);
    }

    #[test]
    fn oversized_events_are_neither_published_nor_taken() {
        let bus = Bus::with_max("node1", 2048);
        let big = Some(("media".into(), "x".repeat(4096)));
        assert_eq!(bus.publish(&destroy("7101", big.clone())), None);
        let from_a_bigger_cap = Bus::new("node2").publish(&destroy("7101", big)).unwrap();
        assert!(matches!(
            bus.receive(&from_a_bigger_cap),
            Received::Refused(why) if why.contains("over 2048")
        ));
    }

    #[test]
    fn unreadable_messages_are_refused() {
        let bus = Bus::new("node1");
        for junk in [&b"not json"[..], br#"{"node":"node2"}"#, b""] {
            assert!(
                matches!(bus.receive(junk), Received::Refused(_)),
                "{junk:?}"
            );
        }
    }
}
