//! Optional HTTP basic auth for `nrt registry`: users with argon2id-hashed passwords from a file, each
//! allowed to read, or to read and write. Without a users file the registry is open, as before.
//!
//! The file: one `name:role:hash` per line (`#` comments), role `read` or `write`, hash a PHC string
//! from `nrt registry hash-password`. Verifying an argon2 hash costs tens of milliseconds by design, so
//! a header that verified once is remembered (by its SHA-256) for the life of the process.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::RwLock;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::CONTENT_TYPE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Read,
    Write,
}

struct User {
    role: Role,
    hash: String,
}

pub struct Users {
    users: HashMap<String, User>,
    /// SHA-256 of Authorization headers that verified, with the user's role.
    verified: RwLock<HashMap<[u8; 32], Role>>,
    /// SHA-256 of headers that did not: a wrong password costs one argon2 run, not one per retry.
    refused: RwLock<HashSet<[u8; 32]>>,
}

impl Users {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("NRT_REGISTRY_USERS_FILE: cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("NRT_REGISTRY_USERS_FILE {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.splitn(3, ':');
            let (Some(name), Some(role), Some(hash)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("line {n}: expected name:role:hash"));
            };
            let role = match role {
                "read" => Role::Read,
                "write" => Role::Write,
                other => return Err(format!("line {n}: role '{other}' is not read or write")),
            };
            PasswordHash::new(hash).map_err(|e| format!("line {n}: user {name}: not a password hash ({e})"))?;
            if name.is_empty() || users.insert(name.to_owned(), User { role, hash: hash.to_owned() }).is_some() {
                return Err(format!("line {n}: empty or repeated user name"));
            }
        }
        if users.is_empty() {
            return Err("no users in it".into());
        }
        Ok(Users {
            users,
            verified: RwLock::default(),
            refused: RwLock::default(),
        })
    }

    /// The role of whoever sent `authorization`, or `None` when it does not verify.
    pub fn check(&self, authorization: &str) -> Option<Role> {
        let digest: [u8; 32] = Sha256::digest(authorization.as_bytes()).into();
        if let Some(role) = self.verified.read().unwrap_or_else(|p| p.into_inner()).get(&digest) {
            return Some(*role);
        }
        if self.refused.read().unwrap_or_else(|p| p.into_inner()).contains(&digest) {
            return None;
        }
        let role = self.verify(authorization);
        match role {
            Some(r) => {
                self.verified.write().unwrap_or_else(|p| p.into_inner()).insert(digest, r);
            }
            None => {
                let mut refused = self.refused.write().unwrap_or_else(|p| p.into_inner());
                // Bounded: a flood of distinct wrong passwords must not grow memory without end.
                if refused.len() >= 10_000 {
                    refused.clear();
                }
                refused.insert(digest);
            }
        }
        role
    }

    fn verify(&self, authorization: &str) -> Option<Role> {
        let encoded = authorization.strip_prefix("Basic ")?.trim();
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (name, password) = text.split_once(':')?;
        let user = self.users.get(name)?;
        let hash = PasswordHash::new(&user.hash).ok()?;
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .ok()
            .map(|_| user.role)
    }
}

/// A PHC string for the users file.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// What a request needs. Confluent's own split: registering, deleting and configuring change the
/// registry; looking a schema up (a POST to /subjects/{subject}) and checking compatibility do not.
pub fn needs(method: &Method, path: &str) -> Role {
    let write = match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => false,
        Method::POST => !(path.starts_with("/compatibility/") || is_subject_lookup(path)),
        _ => true,
    };
    if write {
        Role::Write
    } else {
        Role::Read
    }
}

fn is_subject_lookup(path: &str) -> bool {
    let rest = path.trim_end_matches('/').strip_prefix("/subjects/").unwrap_or("/");
    !rest.is_empty() && !rest.contains('/')
}

fn refuse(status: StatusCode, error_code: u32, message: &str) -> HttpResponse {
    let mut resp = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED {
        resp.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"nrt registry\""));
    }
    resp.content_type(CONTENT_TYPE)
        .json(serde_json::json!({ "error_code": error_code, "message": message }))
}

/// The middleware: 401 without valid credentials, 403 (Confluent's 40301) for a reader that writes.
pub async fn require(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(users) = req.app_data::<web::Data<Users>>().cloned() else {
        return next.call(req).await.map(|r| r.map_into_boxed_body());
    };
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // argon2 is CPU-bound: off the server's threads.
    let role = match authorization {
        Some(a) => web::block(move || users.check(&a)).await.unwrap_or(None),
        None => None,
    };
    let needed = needs(req.method(), req.path());
    let refusal = match role {
        None => Some(refuse(StatusCode::UNAUTHORIZED, 401, "Unauthorized")),
        Some(Role::Read) if needed == Role::Write => Some(refuse(
            StatusCode::FORBIDDEN,
            40301,
            "User is denied operation Write on this registry",
        )),
        Some(_) => None,
    };
    match refusal {
        Some(resp) => Ok(req.into_response(resp)),
        None => next.call(req).await.map(|r| r.map_into_boxed_body()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
    }

    #[test]
    fn users_verify_by_hash_and_keep_their_role() {
        let file = format!(
            "# comment\nreader:read:{}\nwriter:write:{}\n",
            hash_password("r-pass").unwrap(),
            hash_password("w-pass").unwrap()
        );
        assert!(!file.contains("r-pass") && !file.contains("w-pass"));
        let users = Users::parse(&file).unwrap();
        assert_eq!(users.check(&basic("reader", "r-pass")), Some(Role::Read));
        assert_eq!(users.check(&basic("reader", "r-pass")), Some(Role::Read), "cached");
        assert_eq!(users.check(&basic("writer", "w-pass")), Some(Role::Write));
        assert_eq!(users.check(&basic("writer", "r-pass")), None);
        assert_eq!(users.check(&basic("writer", "r-pass")), None, "refusal cached");
        assert_eq!(users.check(&basic("nobody", "x")), None);
        assert_eq!(users.check("Bearer abc"), None);
        assert_eq!(users.check("Basic !!!"), None);
    }

    #[test]
    fn a_bad_users_file_is_refused_by_line() {
        let err = |text: &str| Users::parse(text).err().unwrap_or_default();
        assert!(err("").contains("no users"));
        assert!(err("a:admin:x").contains("line 1: role 'admin'"));
        assert!(err("a:read:plaintext").contains("not a password hash"));
        assert!(err("a-read").contains("name:role:hash"));
    }

    #[test]
    fn reads_and_lookups_need_read_everything_else_write() {
        let cases = [
            (Method::GET, "/subjects", Role::Read),
            (Method::POST, "/subjects/orders-value", Role::Read),
            (Method::POST, "/compatibility/subjects/s/versions/latest", Role::Read),
            (Method::POST, "/subjects/orders-value/versions", Role::Write),
            (Method::DELETE, "/subjects/orders-value", Role::Write),
            (Method::PUT, "/config", Role::Write),
        ];
        for (m, p, want) in cases {
            assert_eq!(needs(&m, p), want, "{m} {p}");
        }
    }
}
