//! Handlers for `/v2/accounts/{account_id}/conferences/...`.

use super::ApiState;
use super::actions::{self, Bulk};
use super::body::Envelope;
use super::dial;
use super::paginate::PageQuery;
use super::render;
use super::reply::{Answer, ApiError};
use super::service::{ConfRef, ConferenceAction, DialArgs, RecordAction, Request, Target};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

type Answered = Result<Answer, ApiError>;
type St = State<ApiState>;

pub async fn list(
    State(s): St,
    Path(account): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answered {
    let confs = s
        .service
        .call(|reply| Request::List { account, reply })
        .await?;
    let now = SystemTime::now();
    let entries: Vec<Value> = confs
        .iter()
        .map(|c| render::list_entry(c, &s.node, now))
        .collect();
    PageQuery::new(query).answer(entries, "id")
}

pub async fn create(State(s): St, Path(account): Path<String>, env: Envelope) -> Answered {
    let doc = env.document()?;
    let doc = s
        .service
        .call(|reply| Request::Create {
            account,
            doc,
            reply,
        })
        .await?;
    Ok(Answer::with_status(StatusCode::CREATED, doc))
}

pub async fn get(State(s): St, Path(conf): Path<(String, String)>) -> Answered {
    let conf = conf_ref(conf);
    let id = conf.id.clone();
    let found = s.service.call(|reply| Request::Get { conf, reply }).await?;
    Ok(Answer::ok(render::full(
        &found,
        &id,
        &s.node,
        SystemTime::now(),
    )))
}

pub async fn replace(State(s): St, Path(conf): Path<(String, String)>, env: Envelope) -> Answered {
    let (conf, doc) = (conf_ref(conf), env.document()?);
    let doc = s
        .service
        .call(|reply| Request::Replace { conf, doc, reply })
        .await?;
    Ok(Answer::ok(doc))
}

pub async fn patch(State(s): St, Path(conf): Path<(String, String)>, env: Envelope) -> Answered {
    let (conf, patch) = (conf_ref(conf), env.document()?);
    let doc = s
        .service
        .call(|reply| Request::Patch { conf, patch, reply })
        .await?;
    Ok(Answer::ok(doc))
}

pub async fn delete(State(s): St, Path(conf): Path<(String, String)>) -> Answered {
    let conf = conf_ref(conf);
    let doc = s
        .service
        .call(|reply| Request::Delete { conf, reply })
        .await?;
    Ok(Answer::ok(doc))
}

pub async fn conference_action(
    State(s): St,
    Path(conf): Path<(String, String)>,
    env: Envelope,
) -> Answered {
    if env.action() == Some("dial") {
        return run_dial(&s, conf_ref(conf), dial::args(&env)?).await;
    }
    let action = actions::conference(&env)?;
    run_conference_action(&s, conf_ref(conf), action).await
}

/// Answers once every endpoint joined or failed: within the ring timeout, plus the time
/// the last answer takes to join.
async fn run_dial(s: &ApiState, conf: ConfRef, dial: DialArgs) -> Answered {
    let limit = dial.timeout + Duration::from_secs(10);
    let responses = s
        .service
        .call_within(limit, |reply| Request::Dial { conf, dial, reply })
        .await?;
    Ok(
        Answer::with_status(StatusCode::ACCEPTED, dial::render(&responses))
            .extra("message", Value::from("attempted dial")),
    )
}

async fn run_conference_action(s: &ApiState, conf: ConfRef, action: ConferenceAction) -> Answered {
    let message = match action {
        ConferenceAction::Record(RecordAction::Start) => "starting recording",
        ConferenceAction::Record(RecordAction::Stop) => "stopping recording",
        _ => "ok",
    };
    s.service
        .call(|reply| Request::Conference {
            conf,
            action,
            reply,
        })
        .await?;
    Ok(Answer::accepted(message))
}

pub async fn participants(State(s): St, Path(conf): Path<(String, String)>) -> Answered {
    let conf = conf_ref(conf);
    let id = conf.id.clone();
    let found = s.service.call(|reply| Request::Get { conf, reply }).await?;
    Ok(Answer::ok(render::participants(
        &found,
        &id,
        &s.node,
        SystemTime::now(),
    )))
}

pub async fn bulk_action(
    State(s): St,
    Path(conf): Path<(String, String)>,
    env: Envelope,
) -> Answered {
    let conf = conf_ref(conf);
    match actions::bulk(&env)? {
        Bulk::Conference(action) => run_conference_action(&s, conf, action).await,
        Bulk::Relate(relate) => {
            s.service
                .call(|reply| Request::Relate {
                    conf,
                    relate,
                    reply,
                })
                .await?;
            Ok(Answer::accepted("relating participants"))
        }
        Bulk::Each(action) => {
            let target = Target::All;
            let again = conf.clone();
            s.service
                .call(|reply| Request::Participants {
                    conf,
                    target,
                    action,
                    reply,
                })
                .await?;
            // Kazoo answers a bulk change with the conference document.
            let found = s
                .service
                .call(|reply| Request::Get { conf: again, reply })
                .await?;
            Ok(Answer::ok(found.doc))
        }
    }
}

pub async fn participant(
    State(s): St,
    Path((account, id, pid)): Path<(String, String, String)>,
) -> Answered {
    let pid = participant_id(&pid)?;
    let conf = ConfRef { account, id };
    let id = conf.id.clone();
    let found = s.service.call(|reply| Request::Get { conf, reply }).await?;
    let rendered = render::participants(&found, &id, &s.node, SystemTime::now());
    let one = rendered
        .as_array()
        .and_then(|all| all.iter().find(|p| p["participant_id"] == pid))
        .cloned();
    Ok(Answer::ok(one.unwrap_or_else(|| json!({}))))
}

pub async fn participant_action(
    State(s): St,
    Path((account, id, pid)): Path<(String, String, String)>,
    env: Envelope,
) -> Answered {
    let target = Target::One(participant_id(&pid)?);
    let action = actions::participant(&env)?;
    let conf = ConfRef { account, id };
    s.service
        .call(|reply| Request::Participants {
            conf,
            target,
            action,
            reply,
        })
        .await?;
    Ok(Answer::accepted("ok"))
}

pub async fn recordings(State(s): St, Path(conf): Path<(String, String)>) -> Answered {
    let conf = conf_ref(conf);
    let list = s
        .service
        .call(|reply| Request::Recordings { conf, reply })
        .await?;
    let entries = list.iter().map(
        |r| json!({"name": r.name, "bytes": r.bytes, "created": render::gregorian(r.created)}),
    );
    Ok(Answer::ok(Value::Array(entries.collect())))
}

pub async fn recording(
    State(s): St,
    Path((account, id, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    // Only plain file names: the service joins it to its recordings directory.
    let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\']);
    if !plain {
        return Err(ApiError::NotFound(name));
    }
    let conf = ConfRef { account, id };
    let asked = name.clone();
    let path = s
        .service
        .call(|reply| Request::Recording {
            conf,
            name: asked,
            reply,
        })
        .await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::NotFound(name))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .len();
    let stream = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let headers = [
        (header::CONTENT_TYPE, "audio/wav".to_owned()),
        (header::CONTENT_LENGTH, len.to_string()),
    ];
    Ok((headers, stream).into_response())
}

fn conf_ref((account, id): (String, String)) -> ConfRef {
    ConfRef { account, id }
}

/// The engine's integer member id; anything else names no participant.
fn participant_id(pid: &str) -> Result<u32, ApiError> {
    pid.parse().map_err(|_| ApiError::NotFound(pid.to_owned()))
}
