//! Conference events the control plane publishes, in Kazoo's two JSON forms.

use super::render::object;
use super::service::Participant;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::time::SystemTime;

/// Who sends the events (Kazoo `App-Name`; `App-Version` is the crate's).
pub const APP_NAME: &str = "chorus";

/// Kazoo's conference event names (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    ConferenceCreate,
    ConferenceDestroy,
    Lock,
    Unlock,
    AddMember,
    DelMember,
    StartTalking,
    StopTalking,
    MuteMember,
    UnmuteMember,
    DeafMember,
    UndeafMember,
    /// Chorus's own: media asked to play (API `play`) could not be fetched or spoken.
    PlayFailed,
}

impl EventName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConferenceCreate => "conference-create",
            Self::ConferenceDestroy => "conference-destroy",
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::AddMember => "add-member",
            Self::DelMember => "del-member",
            Self::StartTalking => "start-talking",
            Self::StopTalking => "stop-talking",
            Self::MuteMember => "mute-member",
            Self::UnmuteMember => "unmute-member",
            Self::DeafMember => "deaf-member",
            Self::UndeafMember => "undeaf-member",
            Self::PlayFailed => "play-failed",
        }
    }
}

/// One event, published by the control plane into the API's broadcast channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ConferenceEvent {
    pub name: EventName,
    pub account_id: String,
    pub conference_id: String,
    pub conference_name: String,
    /// The running instance's uuid (Kazoo `Instance-ID`).
    pub instance_id: String,
    pub profile: String,
    /// Members after this event (a `del-member` already excludes the leaver).
    pub members: u32,
    pub started_at: SystemTime,
    pub at: SystemTime,
    /// The member concerned; `None` for conference-level events.
    pub participant: Option<Participant>,
    /// Unique per event (Kazoo `Msg-ID`): a consumer can drop a duplicate delivery.
    pub msg_id: String,
    /// A `play-failed` event's media and why it failed.
    pub failure: Option<(String, String)>,
}

impl ConferenceEvent {
    /// Conference-level events put the conference id in the call id slot, as Kazoo does.
    pub fn call_id(&self) -> &str {
        self.participant
            .as_ref()
            .map_or(&self.conference_id, |p| &p.call_id)
    }

    /// The event as `node`, the room's host, shows it to subscribers anywhere.
    pub fn rendered(&self, node: &str) -> RenderedEvent {
        RenderedEvent {
            name: self.name.as_str().to_owned(),
            account_id: self.account_id.clone(),
            conference_id: self.conference_id.clone(),
            call_id: self.call_id().to_owned(),
            kazoo: self.kazoo_json(node),
        }
    }

    /// The AMQP form: CamelCase-dashed keys.
    pub fn kazoo_json(&self, node: &str) -> Value {
        let mut event = json!({
            "Event-Category": "conference",
            "Event-Name": "event",
            "Event": self.name.as_str(),
            "Conference-ID": self.conference_id,
            "Instance-ID": self.instance_id,
            "Conference-Node": node,
            // The events come from the node hosting the room, Kazoo's focus.
            "Focus": node,
            "Profile": self.profile,
            "Account-ID": self.account_id,
            "Call-ID": self.call_id(),
            "Node": node,
            "Msg-ID": self.msg_id,
            "App-Name": APP_NAME,
            "App-Version": env!("CARGO_PKG_VERSION"),
        });
        if let (Some(p), Value::Object(map)) = (&self.participant, &mut event) {
            map.extend(participant_fields(p));
        }
        if let (Some((media, error)), Value::Object(map)) = (&self.failure, &mut event) {
            map.insert("Media-ID".into(), media.clone().into());
            map.insert("Error".into(), error.clone().into());
        }
        event
    }
}

/// An event as subscribers match and see it, whichever node they are on: what it is about
/// and its AMQP form, rendered once by the node hosting the room (so `Focus` and `Node`
/// name that node); the cluster's event bus carries it between nodes as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedEvent {
    pub name: String,
    pub account_id: String,
    pub conference_id: String,
    /// The member's call id; the conference id for conference-level events.
    pub call_id: String,
    pub kazoo: Value,
}

impl RenderedEvent {
    pub fn routing_key(&self) -> String {
        format!(
            "conference.event.{}.{}.{}.{}",
            self.name, self.account_id, self.conference_id, self.call_id
        )
    }

    /// The WebSocket form: the AMQP form with snake_case keys, plus the 4.0 docs' flat form
    /// (`event_name`, channel variables at the top level).
    pub fn snake_json(&self) -> Value {
        let mut event = snake_case(self.kazoo.clone());
        if let Value::Object(map) = &mut event {
            if let Some(Value::Object(vars)) = map.get("conference_channel_vars").cloned() {
                map.extend(vars);
            }
            map.insert("event_name".into(), "participant_event".into());
        }
        event
    }
}

fn participant_fields(p: &Participant) -> Map<String, Value> {
    object(json!({
        "Participant-ID": p.participant_id,
        "Caller-ID-Name": p.caller_id_name,
        "Caller-ID-Number": p.caller_id_number,
        "Channel-Presence-ID": p.call.from,
        "Custom-Channel-Vars": p.custom_channel_vars,
        "Custom-Application-Vars": p.custom_application_vars,
        "Conference-Channel-Vars": {
            "Is-Moderator": p.is_moderator,
            "Floor": p.floor,
            "Video": p.video,
            "See": p.see,
            "Speak": p.speak,
            "Hear": p.hear,
            "Talking": p.talking,
            "Mute-Detect": p.mute_detect,
            "Energy-Level": p.energy_level,
            "Current-Energy": p.current_energy,
            "Member-ID": p.participant_id,
            "Member-Ghost": p.member_ghost,
        },
    }))
}

/// Kazoo's `kz_json:normalize`: `Conference-Channel-Vars` -> `conference_channel_vars`, deeply.
fn snake_case(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase().replace('-', "_"), snake_case(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{event, participant};
    use super::*;

    #[test]
    fn kazoo_form_uses_dashed_camel_case_and_nests_channel_vars() {
        let who = participant(4, "call-4", true, SystemTime::now());
        let e = event(EventName::MuteMember, "conf1", 2, Some(who)).kazoo_json("node1");
        assert_eq!(e["Event"], "mute-member");
        assert_eq!(
            (&e["Event-Category"], &e["Event-Name"]),
            (&json!("conference"), &json!("event"))
        );
        assert_eq!(
            (&e["Conference-Node"], &e["Focus"], &e["Call-ID"]),
            (&json!("node1"), &json!("node1"), &json!("call-4"))
        );
        assert_eq!(
            e["Custom-Channel-Vars"]["Account-ID"],
            super::super::tests::ACCOUNT_A
        );
        let vars = &e["Conference-Channel-Vars"];
        assert_eq!(
            (&vars["Is-Moderator"], &vars["Member-ID"]),
            (&json!(true), &json!(4))
        );
        assert_eq!(vars.as_object().map(Map::len), Some(12));
        assert_eq!(
            (&e["Node"], &e["App-Name"]),
            (&json!("node1"), &json!("chorus"))
        );
        assert_eq!(e["App-Version"], env!("CARGO_PKG_VERSION"));
        assert!(!e["Msg-ID"].as_str().unwrap().is_empty());
    }

    #[test]
    fn conference_level_events_carry_no_participant_fields() {
        let e = event(EventName::ConferenceCreate, "conf1", 1, None).rendered("node1");
        let snake = e.snake_json();
        assert_eq!(snake["call_id"], "conf1");
        assert!(snake.get("participant_id").is_none(), "{snake}");
        assert_eq!(
            e.routing_key(),
            format!(
                "conference.event.conference-create.{}.conf1.conf1",
                e.account_id
            )
        );
    }
}
