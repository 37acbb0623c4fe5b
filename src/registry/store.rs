//! The registry's state and rules: subjects, versions, global ids, compatibility config, soft deletes.
//!
//! Durability: the whole state is a small JSON snapshot, rewritten on every change through a temp file,
//! fsync and rename (then the directory is fsync'd), so a crash leaves the old or the new state, never a
//! torn one. A change is applied to a copy and only becomes visible once it is on disk. One mutex
//! serialises changes: two concurrent registrations of the same new schema get one id.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use super::compat::{self, CompatLevel};
use super::error::RegistryError;

const STATE_FILE: &str = "registry-state.json";

/// A version argument: a number or `latest` (Confluent also accepts -1 for latest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(u32),
}

impl VersionSpec {
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        if s == "latest" || s == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match s.parse::<u32>() {
            Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(VersionSpec::Number(n)),
            _ => Err(RegistryError::InvalidVersion(s.to_owned())),
        }
    }
}

/// One registered version, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaVersion {
    pub subject: String,
    pub id: u32,
    pub version: u32,
    pub schema: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct VersionState {
    version: u32,
    id: u32,
    deleted: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SubjectState {
    versions: Vec<VersionState>,
    /// Version numbers are never reused, even after a permanent delete.
    next_version: u32,
}

impl SubjectState {
    fn live(&self) -> impl Iterator<Item = &VersionState> {
        self.versions.iter().filter(|v| !v.deleted)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    next_id: u32,
    /// Global schema ids → normalized schema text. Ids are never reassigned.
    schemas: BTreeMap<u32, String>,
    subjects: BTreeMap<String, SubjectState>,
    global: CompatLevel,
    subject_config: BTreeMap<String, CompatLevel>,
}

impl Default for State {
    fn default() -> Self {
        State {
            next_id: 1,
            schemas: BTreeMap::new(),
            subjects: BTreeMap::new(),
            global: CompatLevel::Backward,
            subject_config: BTreeMap::new(),
        }
    }
}

struct Inner {
    state: State,
    /// Normalized text → id, and parsed schemas by id: derived from `state`, never persisted.
    ids_by_text: HashMap<String, u32>,
    parsed: HashMap<u32, Arc<Schema>>,
}

pub struct Store {
    inner: Mutex<Inner>,
    dir: PathBuf,
}

/// Parses an Avro schema and gives its normalized text: apache-avro's re-serialization of the parsed
/// schema. Whitespace and attribute order disappear; defaults, docs, aliases and logical types stay, so
/// two schemas that differ in meaning never share an id (Parsing Canonical Form would drop those).
pub fn normalize(text: &str) -> Result<(Schema, String), RegistryError> {
    let schema = Schema::parse_str(text).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    let normalized =
        serde_json::to_string(&schema).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    Ok((schema, normalized))
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        fs::create_dir_all(dir).map_err(|e| store_err("creating", dir, e))?;
        let path = dir.join(STATE_FILE);
        let state = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| RegistryError::Store(format!("{} is corrupt: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(store_err("reading", &path, e)),
        };
        let mut inner = Inner {
            state,
            ids_by_text: HashMap::new(),
            parsed: HashMap::new(),
        };
        for (id, text) in &inner.state.schemas {
            let (schema, _) = normalize(text)?;
            inner.ids_by_text.insert(text.clone(), *id);
            inner.parsed.insert(*id, Arc::new(schema));
        }
        Ok(Store {
            inner: Mutex::new(inner),
            dir: dir.to_owned(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied change: changes are made on a copy.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `change` to a copy of the state, writes it durably, then makes it visible.
    fn commit<T>(
        &self,
        inner: &mut Inner,
        change: impl FnOnce(&mut State) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let mut next = inner.state.clone();
        let out = change(&mut next)?;
        self.persist(&next)?;
        inner.state = next;
        Ok(out)
    }

    fn persist(&self, state: &State) -> Result<(), RegistryError> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec(state).map_err(|e| RegistryError::Store(e.to_string()))?;
        let mut f = fs::File::create(&tmp).map_err(|e| store_err("creating", &tmp, e))?;
        f.write_all(&bytes).map_err(|e| store_err("writing", &tmp, e))?;
        f.sync_all().map_err(|e| store_err("syncing", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| store_err("renaming", &path, e))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| store_err("syncing", &self.dir, e))
    }

    fn level_of(state: &State, subject: &str) -> CompatLevel {
        state.subject_config.get(subject).copied().unwrap_or(state.global)
    }

    /// Registers `text` under `subject`; the same schema again returns the id it already has.
    pub fn register(&self, subject: &str, text: &str) -> Result<u32, RegistryError> {
        let (schema, normalized) = normalize(text)?;
        let mut inner = self.lock();
        let existing_id = inner.ids_by_text.get(&normalized).copied();
        if let (Some(id), Some(subj)) = (existing_id, inner.state.subjects.get(subject)) {
            if subj.live().any(|v| v.id == id) {
                return Ok(id);
            }
        }
        let level = Self::level_of(&inner.state, subject);
        let earlier: Vec<Arc<Schema>> = inner
            .state
            .subjects
            .get(subject)
            .map(|s| {
                s.live()
                    .filter_map(|v| inner.parsed.get(&v.id).cloned())
                    .collect()
            })
            .unwrap_or_default();
        let earlier_refs: Vec<&Schema> = earlier.iter().map(|s| s.as_ref()).collect();
        let reasons = compat::check(level, &schema, &earlier_refs);
        if !reasons.is_empty() {
            return Err(RegistryError::Incompatible {
                subject: subject.to_owned(),
                details: reasons,
            });
        }
        let id = self.commit(&mut inner, |state| {
            let id = existing_id.unwrap_or(state.next_id);
            if existing_id.is_none() {
                state.next_id += 1;
                state.schemas.insert(id, normalized.clone());
            }
            let subj = state.subjects.entry(subject.to_owned()).or_default();
            subj.next_version = subj
                .next_version
                .max(subj.versions.iter().map(|v| v.version).max().unwrap_or(0))
                + 1;
            subj.versions.push(VersionState {
                version: subj.next_version,
                id,
                deleted: false,
            });
            Ok(id)
        })?;
        inner.ids_by_text.insert(normalized, id);
        inner.parsed.entry(id).or_insert_with(|| Arc::new(schema));
        Ok(id)
    }

    /// Which version of `subject` is `text`?
    pub fn lookup(&self, subject: &str, text: &str, deleted: bool) -> Result<SchemaVersion, RegistryError> {
        let (_, normalized) = normalize(text)?;
        let inner = self.lock();
        let subj = Self::subject(&inner.state, subject, deleted)?;
        let id = inner.ids_by_text.get(&normalized).copied();
        subj.versions
            .iter()
            .rev()
            .find(|v| Some(v.id) == id && (deleted || !v.deleted))
            .map(|v| SchemaVersion {
                subject: subject.to_owned(),
                id: v.id,
                version: v.version,
                schema: normalized.clone(),
            })
            .ok_or(RegistryError::SchemaNotFound(None))
    }

    fn subject<'a>(
        state: &'a State,
        subject: &str,
        deleted: bool,
    ) -> Result<&'a SubjectState, RegistryError> {
        state
            .subjects
            .get(subject)
            .filter(|s| deleted || s.live().next().is_some())
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))
    }

    pub fn subjects(&self, deleted: bool) -> Vec<String> {
        let inner = self.lock();
        inner
            .state
            .subjects
            .iter()
            .filter(|(_, s)| deleted || s.live().next().is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<u32>, RegistryError> {
        let inner = self.lock();
        let subj = Self::subject(&inner.state, subject, deleted)?;
        Ok(subj
            .versions
            .iter()
            .filter(|v| deleted || !v.deleted)
            .map(|v| v.version)
            .collect())
    }

    pub fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SchemaVersion, RegistryError> {
        let inner = self.lock();
        let subj = Self::subject(&inner.state, subject, deleted)?;
        let v = Self::find_version(subj, spec, deleted)?;
        Ok(SchemaVersion {
            subject: subject.to_owned(),
            id: v.id,
            version: v.version,
            schema: inner.state.schemas.get(&v.id).cloned().unwrap_or_default(),
        })
    }

    fn find_version(
        subj: &SubjectState,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<&VersionState, RegistryError> {
        let mut candidates = subj.versions.iter().filter(|v| deleted || !v.deleted);
        let found = match spec {
            VersionSpec::Latest => candidates.next_back(),
            VersionSpec::Number(n) => candidates.find(|v| v.version == n),
        };
        found.ok_or_else(|| RegistryError::VersionNotFound {
            version: match spec {
                VersionSpec::Latest => "latest".to_owned(),
                VersionSpec::Number(n) => n.to_string(),
            },
        })
    }

    pub fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        self.lock()
            .state
            .schemas
            .get(&id)
            .cloned()
            .ok_or(RegistryError::SchemaNotFound(Some(id)))
    }

    /// The (subject, version) pairs that use schema `id`, live ones only unless `deleted`.
    pub fn usages(&self, id: u32, deleted: bool) -> Result<Vec<(String, u32)>, RegistryError> {
        let inner = self.lock();
        if !inner.state.schemas.contains_key(&id) {
            return Err(RegistryError::SchemaNotFound(Some(id)));
        }
        Ok(inner
            .state
            .subjects
            .iter()
            .flat_map(|(name, s)| {
                s.versions
                    .iter()
                    .filter(move |v| v.id == id && (deleted || !v.deleted))
                    .map(move |v| (name.clone(), v.version))
            })
            .collect())
    }

    fn subject_mut<'a>(state: &'a mut State, subject: &str) -> Result<&'a mut SubjectState, RegistryError> {
        state
            .subjects
            .get_mut(subject)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))
    }

    /// Soft-deletes every live version, or (`permanent`) forgets a subject whose versions are all soft-deleted.
    pub fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>, RegistryError> {
        let mut inner = self.lock();
        self.commit(&mut inner, |state| {
            let subj = Self::subject_mut(state, subject)?;
            let live: Vec<u32> = subj.live().map(|v| v.version).collect();
            if permanent {
                if !live.is_empty() {
                    return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned()));
                }
                let all = subj.versions.iter().map(|v| v.version).collect();
                state.subjects.remove(subject);
                state.subject_config.remove(subject);
                return Ok(all);
            }
            if live.is_empty() {
                return Err(RegistryError::SubjectSoftDeleted(subject.to_owned()));
            }
            subj.versions.iter_mut().for_each(|v| v.deleted = true);
            Ok(live)
        })
    }

    pub fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<u32, RegistryError> {
        let mut inner = self.lock();
        self.commit(&mut inner, |state| {
            let subj = Self::subject_mut(state, subject)?;
            // A numbered version is found even when soft-deleted (to answer 40406 rather than 40402); a soft
            // delete of "latest" means the latest live one.
            let include_deleted = permanent || matches!(spec, VersionSpec::Number(_));
            let number = Self::find_version(subj, spec, include_deleted)?.version;
            let pos = subj
                .versions
                .iter()
                .position(|v| v.version == number)
                .unwrap_or_default();
            match (permanent, subj.versions[pos].deleted) {
                (false, true) => Err(RegistryError::VersionSoftDeleted {
                    subject: subject.to_owned(),
                    version: number,
                }),
                (false, false) => {
                    subj.versions[pos].deleted = true;
                    Ok(number)
                }
                (true, false) => Err(RegistryError::VersionNotSoftDeleted {
                    subject: subject.to_owned(),
                    version: number,
                }),
                (true, true) => {
                    subj.versions.remove(pos);
                    if subj.versions.is_empty() {
                        state.subjects.remove(subject);
                    }
                    Ok(number)
                }
            }
        })
    }

    pub fn global_level(&self) -> CompatLevel {
        self.lock().state.global
    }

    pub fn set_global_level(&self, level: CompatLevel) -> Result<(), RegistryError> {
        let mut inner = self.lock();
        self.commit(&mut inner, |state| {
            state.global = level;
            Ok(())
        })
    }

    /// The subject's own level; with `default_to_global`, the global one when it has none.
    pub fn subject_level(
        &self,
        subject: &str,
        default_to_global: bool,
    ) -> Result<CompatLevel, RegistryError> {
        let inner = self.lock();
        match inner.state.subject_config.get(subject) {
            Some(level) => Ok(*level),
            None if default_to_global => Ok(inner.state.global),
            None => Err(RegistryError::SubjectConfigNotFound(subject.to_owned())),
        }
    }

    pub fn set_subject_level(&self, subject: &str, level: CompatLevel) -> Result<(), RegistryError> {
        let mut inner = self.lock();
        self.commit(&mut inner, |state| {
            state.subject_config.insert(subject.to_owned(), level);
            Ok(())
        })
    }

    /// Removes the subject's own level and returns it.
    pub fn delete_subject_level(&self, subject: &str) -> Result<CompatLevel, RegistryError> {
        let mut inner = self.lock();
        self.commit(&mut inner, |state| {
            state
                .subject_config
                .remove(subject)
                .ok_or_else(|| RegistryError::SubjectConfigNotFound(subject.to_owned()))
        })
    }

    /// Reasons `text` is incompatible with one version of `subject` under the subject's level.
    pub fn check_compatibility(
        &self,
        subject: &str,
        spec: VersionSpec,
        text: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let (schema, _) = normalize(text)?;
        let inner = self.lock();
        let subj = Self::subject(&inner.state, subject, false)?;
        let v = Self::find_version(subj, spec, false)?;
        let level = Self::level_of(&inner.state, subject);
        let Some(old) = inner.parsed.get(&v.id) else {
            return Err(RegistryError::SchemaNotFound(Some(v.id)));
        };
        Ok(compat::check(level, &schema, &[old.as_ref()]))
    }
}

fn store_err(what: &str, path: &Path, e: std::io::Error) -> RegistryError {
    RegistryError::Store(format!("{what} {}: {e}", path.display()))
}
