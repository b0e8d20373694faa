//! Seed documents loaded on the first start: `{dir}/conferences/{id}.json`
//! (conference docs as an API body) and `{dir}/system_config/{category}.json`.

use super::StoreError;
use serde_json::{Map, Value};
use std::path::Path;

/// Seed documents read from disk, in file-name order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seed {
    /// (file path, conference id from the file stem, body).
    pub conferences: Vec<(String, String, Value)>,
    /// (category from the file stem, document).
    pub system_config: Vec<(String, Map<String, Value>)>,
}

impl Seed {
    /// Reads the seed directory; a missing directory or subdirectory is an
    /// empty seed, an unreadable or non-object file an error naming it.
    pub fn read(dir: &Path) -> Result<Seed, StoreError> {
        let conferences = json_files(&dir.join("conferences"))?
            .into_iter()
            .map(|(path, stem, obj)| (path, stem, Value::Object(obj)))
            .collect();
        let system_config = json_files(&dir.join("system_config"))?
            .into_iter()
            .map(|(_, stem, obj)| (stem, obj))
            .collect();
        Ok(Seed {
            conferences,
            system_config,
        })
    }
}

type SeedFile = (String, String, Map<String, Value>);

fn json_files(dir: &Path) -> Result<Vec<SeedFile>, StoreError> {
    let err = |path: &Path, reason: String| StoreError::File {
        path: path.display().to_string(),
        reason,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(dir, e.to_string())),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| err(dir, e.to_string()))?.path();
        if path.extension().is_some_and(|x| x == "json") {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
            let obj = serde_json::from_str(&text).map_err(|e| err(&path, e.to_string()))?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((path.display().to_string(), stem, obj))
        })
        .collect()
}
