//! A media document's audio: `/v2/accounts/{account_id}/media/{document_id}/raw` (GET the
//! stored WAV; PUT or POST a WAV or MP3, converted to the server's WAV), and the audio of a
//! `tts` document, spoken whenever it is written. The document itself is a generic
//! document ([`super::documents`]); the path's account owns it, so another account's id is
//! not found, and its file is only served to that account.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::ApiState;
use super::reply::{Answer, ApiError};
use super::stored::{rendered, with_store};
use crate::documents::media::{tts_text, tts_voice};
use crate::documents::{Kind, Owner};
use crate::sounds::library::{self, Library};
use crate::sounds::tts;
use crate::store::{DocumentWrite, StoredDocument};

pub const RAW: &str = "/v2/accounts/{account_id}/media/{document_id}/raw";

/// Uploads converted (or texts spoken) at once: conversion is CPU work on blocking threads.
const CONVERSIONS: usize = 2;

/// How much of a refused upload is still read (see [`drain`]), and for how long at most.
const DRAIN_BYTES: usize = 4 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Where uploads go and how large they may be.
pub struct MediaFiles {
    pub library: Library,
    /// The largest upload, in bytes (`sounds.max_file_bytes`).
    pub max_bytes: u64,
    permits: Semaphore,
}

impl MediaFiles {
    pub fn new(library: Library, max_bytes: u64) -> Self {
        MediaFiles {
            library,
            max_bytes,
            permits: Semaphore::new(CONVERSIONS),
        }
    }
}

pub fn route() -> MethodRouter<ApiState> {
    // The upload's own cap (media.max_bytes) replaces the JSON bodies' one.
    get(download)
        .put(upload)
        .post(upload)
        .layer(axum::extract::DefaultBodyLimit::disable())
}

fn files(s: &ApiState) -> Result<Arc<MediaFiles>, ApiError> {
    s.media.clone().ok_or(ApiError::Unavailable)
}

async fn download(
    State(s): State<ApiState>,
    Path((account, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let files = files(&s)?;
    let doc = document(&s, &account, &id).await?;
    let path = files
        .library
        .path(&account, &doc.id)
        .ok_or_else(|| ApiError::NotFound(id.clone()))?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::NotFound(format!("{id}: no audio uploaded")))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .len();
    let headers = [
        (header::CONTENT_TYPE, "audio/wav".to_owned()),
        (header::CONTENT_LENGTH, len.to_string()),
    ];
    let stream = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((headers, stream).into_response())
}

async fn upload(
    State(s): State<ApiState>,
    Path((account, id)): Path<(String, String)>,
    request: Request,
) -> Result<Answer, ApiError> {
    let files = files(&s)?;
    let cap = files.max_bytes;
    let too_large = ApiError::TooLarge(usize::try_from(cap).unwrap_or(usize::MAX));
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        drain(request.into_body().into_data_stream()).await;
        return Err(too_large);
    }
    let doc = document(&s, &account, &id).await?;
    let limit = usize::try_from(cap).unwrap_or(usize::MAX);
    let bytes = read_capped(request.into_body(), limit)
        .await
        .ok_or(too_large)?;
    let _permit = files.permits.acquire().await.map_err(|_| ApiError::Busy)?;
    let wav = tokio::task::spawn_blocking(move || library::convert(&bytes))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|message| ApiError::invalid("file", "format", json!({"message": message})))?;
    let saved = keep(&s, &files, &account, &doc.id, wav, "upload").await?;
    Ok(Answer::ok(rendered(&saved)))
}

/// The body if it is whole and fits in `cap` bytes; a larger one is drained and refused.
async fn read_capped(body: Body, cap: usize) -> Option<Vec<u8>> {
    let mut chunks = body.into_data_stream();
    let mut kept = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.ok()?;
        if kept.len() + chunk.len() > cap {
            drain(chunks).await;
            return None;
        }
        kept.extend_from_slice(&chunk);
    }
    Some(kept)
}

/// Reads and drops the rest of a refused body, bounded in bytes and time: a client still
/// sending when the 413 comes would otherwise see a reset connection instead of the answer.
async fn drain(mut chunks: BodyDataStream) {
    let read = async {
        let mut seen = 0;
        while seen < DRAIN_BYTES {
            match chunks.next().await {
                Some(Ok(chunk)) => seen += chunk.len(),
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}

/// A written media document's audio: a `tts` one is spoken again and stored, so its id
/// plays like an upload. A failed render is a 400 naming `tts.text` (the document stays,
/// without audio).
pub async fn written(s: &ApiState, account: &str, doc: StoredDocument) -> Result<Value, ApiError> {
    let Some(text) = tts_text(&doc.doc).map(str::to_owned) else {
        return Ok(rendered(&doc));
    };
    if doc.doc.get("media_source").and_then(Value::as_str) != Some("tts") {
        return Ok(rendered(&doc));
    }
    let files = files(s)?;
    let language = doc.doc.get("language").and_then(Value::as_str);
    let language = language.and_then(|l| l.get(..2)).unwrap_or("en");
    let failed =
        |message: String| ApiError::invalid("tts.text", "tts", json!({"message": message}));
    let spoken =
        tts::sound(&text, tts_voice(&doc.doc), language).map_err(|e| failed(format!("{e:?}")))?;
    let crate::sounds::Sound::Tts { text, voice } = spoken else {
        return Ok(rendered(&doc));
    };
    let _permit = files.permits.acquire().await.map_err(|_| ApiError::Busy)?;
    let speech = tts::render(&text, &voice, files.max_bytes)
        .await
        .map_err(failed)?;
    let wav = tokio::task::spawn_blocking(move || library::convert(&speech))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(failed)?;
    drop(_permit);
    let saved = keep(s, &files, account, &doc.id, wav, "tts").await?;
    Ok(rendered(&saved))
}

/// Forgets a deleted media document's audio.
pub fn deleted(s: &ApiState, account: &str, id: &str) {
    if let Some(files) = &s.media {
        files.library.remove(account, id);
    }
}

/// Saves the converted audio and records its type and size on the document.
async fn keep(
    s: &ApiState,
    files: &MediaFiles,
    account: &str,
    id: &str,
    wav: Vec<u8>,
    source: &str,
) -> Result<StoredDocument, ApiError> {
    let len = wav.len();
    let library = files.library.clone();
    let (acc, doc_id) = (account.to_owned(), id.to_owned());
    tokio::task::spawn_blocking(move || library.save(&acc, &doc_id, &wav))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let patch = json!({
        "content_type": "audio/wav",
        "content_length": len,
        "media_source": source,
    });
    let (account, id) = (account.to_owned(), id.to_owned());
    with_store(s, move |st| {
        let write = DocumentWrite::Patch(patch);
        st.write_document(
            Owner::Account(&account),
            Kind::Media,
            Some(&id),
            write,
            None,
        )
    })
    .await
}

/// The account's media document `id`, or 404.
async fn document(s: &ApiState, account: &str, id: &str) -> Result<StoredDocument, ApiError> {
    let (account, id) = (account.to_owned(), id.to_owned());
    with_store(s, move |st| {
        st.get_document(Owner::Account(&account), Kind::Media, &id)
    })
    .await
}
