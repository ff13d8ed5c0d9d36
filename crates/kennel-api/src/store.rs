//! The token file: `<lib>/api/tokens.json`, root's alone (0600 in a 0700
//! directory), rewritten whole (temporary file, fsync, rename) under a
//! lock, so the CLI and the service never see half a file.
//!
//! Each token is stored as an Argon2id hash of its secret. Checking one
//! costs tens of milliseconds on purpose; the service remembers tokens it
//! has checked (by a SHA-256 of the whole token) until the file changes,
//! so a client pays that once, not per request.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use kennel_ve::VeId;
use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};

use crate::error::{io, ApiAccessError};
use crate::role::{Principal, Role, Tenant};
use crate::token::{Token, TokenId};

/// The token file is read whole; a larger one is refused as damaged.
const MAX_FILE: u64 = 16 << 20;

/// One token as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: TokenId,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Tenant>,
    /// The VEs it may touch (id → uuid at grant); `None`: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ves: Option<BTreeMap<VeId, String>>,
    /// Argon2id, PHC string format.
    pub hash: String,
    /// Seconds since the epoch.
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl TokenRecord {
    /// The principal a request showing this token acts as.
    pub fn principal(&self) -> Principal {
        Principal {
            token: Some(self.id.clone()),
            role: self.role,
            tenant: self.tenant.clone(),
            ves: self.ves.clone(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    version: u32,
    tokens: Vec<TokenRecord>,
}

/// What a new token may do.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub role: Role,
    pub tenant: Option<Tenant>,
    /// With a tenant: the VEs it may touch, each with its current uuid.
    pub ves: Option<BTreeMap<VeId, String>>,
    pub comment: Option<String>,
}

impl NewToken {
    /// The rules a token's scope follows, checked before anything is
    /// written.
    fn check(&self) -> Result<(), ApiAccessError> {
        match (&self.tenant, &self.ves, self.role) {
            (Some(_), _, Role::Admin) => Err(ApiAccessError::BadInput(
                "a tenant's token cannot be an admin's: use --role operator or viewer".into(),
            )),
            (Some(_), None, _) => Err(ApiAccessError::BadInput(
                "a tenant's token needs the VEs it may touch: add --ves ID,ID...".into(),
            )),
            (None, Some(_), _) => Err(ApiAccessError::BadInput(
                "--ves limits a tenant's token: add --tenant NAME".into(),
            )),
            _ => match &self.comment {
                Some(c) if c.len() > 200 || c.chars().any(char::is_control) => {
                    Err(ApiAccessError::BadInput(
                        "a token's comment is one line of at most 200 bytes".into(),
                    ))
                }
                _ => Ok(()),
            },
        }
    }
}

/// The token file of one state root.
#[derive(Debug, Clone)]
pub struct TokenStore {
    dir: PathBuf,
}

impl TokenStore {
    /// The store below state directory `lib` (`<lib>/api`).
    pub fn new(lib: &Path) -> Self {
        TokenStore {
            dir: lib.join("api"),
        }
    }

    /// The file itself (the service watches its modification time).
    pub fn file(&self) -> PathBuf {
        self.dir.join("tokens.json")
    }

    /// Every token; none if the file does not exist yet.
    pub fn load(&self) -> Result<Vec<TokenRecord>, ApiAccessError> {
        let path = self.file();
        let text = match File::open(&path) {
            Ok(f) => {
                let len = f
                    .metadata()
                    .map_err(io(format!("stat {}", path.display())))?
                    .len();
                if len > MAX_FILE {
                    return Err(self.damaged("larger than 16 MiB"));
                }
                fs::read_to_string(&path).map_err(io(format!("read {}", path.display())))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("open {}", path.display()))(e)),
        };
        let file: TokenFile =
            serde_json::from_str(&text).map_err(|e| self.damaged(&e.to_string()))?;
        Ok(file.tokens)
    }

    /// Makes a token: its secret is returned once and stored only hashed.
    pub fn create(&self, new: NewToken) -> Result<(Token, TokenRecord), ApiAccessError> {
        new.check()?;
        let token = Token::generate()?;
        let record = TokenRecord {
            id: token.id.clone(),
            role: new.role,
            tenant: new.tenant,
            ves: new.ves,
            hash: hash_secret(token.secret())?,
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            comment: new.comment,
        };
        self.change(|tokens| {
            tokens.push(record.clone());
            Ok(())
        })?;
        Ok((token, record))
    }

    /// Removes token `id`; the service refuses it from its next request.
    pub fn revoke(&self, id: &TokenId) -> Result<TokenRecord, ApiAccessError> {
        self.change(|tokens| {
            let at = tokens
                .iter()
                .position(|t| &t.id == id)
                .ok_or_else(|| ApiAccessError::NoSuchToken(id.to_string()))?;
            Ok(tokens.remove(at))
        })
    }

    /// Replaces the VEs a tenant's token may touch.
    pub fn set_ves(
        &self,
        id: &TokenId,
        ves: BTreeMap<VeId, String>,
    ) -> Result<TokenRecord, ApiAccessError> {
        self.change(|tokens| {
            let t = tokens
                .iter_mut()
                .find(|t| &t.id == id)
                .ok_or_else(|| ApiAccessError::NoSuchToken(id.to_string()))?;
            if t.tenant.is_none() {
                return Err(ApiAccessError::BadInput(format!(
                    "token {id} is not a tenant's: it already reaches every VE"
                )));
            }
            t.ves = Some(ves);
            Ok(t.clone())
        })
    }

    /// The record of `token`, if it is one of `records` and its secret
    /// matches. A wrong secret costs the same hash as a right one.
    pub fn verify<'a>(records: &'a [TokenRecord], token: &Token) -> Option<&'a TokenRecord> {
        let record = records.iter().find(|r| r.id == token.id)?;
        let hash = PasswordHash::new(&record.hash).ok()?;
        Argon2::default()
            .verify_password(token.secret().as_bytes(), &hash)
            .ok()
            .map(|()| record)
    }

    /// Reads, changes and writes the file under its lock.
    fn change<T>(
        &self,
        edit: impl FnOnce(&mut Vec<TokenRecord>) -> Result<T, ApiAccessError>,
    ) -> Result<T, ApiAccessError> {
        self.private_dir()?;
        let lock_path = self.dir.join("tokens.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&lock_path)
            .map_err(io(format!("open {}", lock_path.display())))?;
        flock(&lock, FlockOperation::LockExclusive)
            .map_err(|e| io(format!("lock {}", lock_path.display()))(e.into()))?;
        let mut tokens = self.load()?;
        let out = edit(&mut tokens)?;
        self.write(&tokens)?;
        Ok(out)
    }

    fn write(&self, tokens: &[TokenRecord]) -> Result<(), ApiAccessError> {
        let file = TokenFile {
            version: 1,
            tokens: tokens.to_vec(),
        };
        let mut text = serde_json::to_string_pretty(&file).map_err(|e| ApiAccessError::Io {
            what: "encode the token file".into(),
            source: std::io::Error::other(e),
        })?;
        text.push('\n');
        let path = self.file();
        let tmp = self
            .dir
            .join(format!(".tokens.json.{}", std::process::id()));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(io(format!("create {}", tmp.display())))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io(format!("write {}", tmp.display())))?;
        fs::rename(&tmp, &path).map_err(io(format!("rename into {}", path.display())))
    }

    /// `<lib>/api`, a real directory only root enters.
    fn private_dir(&self) -> Result<(), ApiAccessError> {
        fs::create_dir_all(&self.dir).map_err(io(format!("create {}", self.dir.display())))?;
        let md =
            fs::symlink_metadata(&self.dir).map_err(io(format!("stat {}", self.dir.display())))?;
        if !md.is_dir() {
            return Err(ApiAccessError::BadInput(format!(
                "{} is not a directory: Kennel keeps its API tokens there",
                self.dir.display()
            )));
        }
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .map_err(io(format!("chmod {}", self.dir.display())))
    }

    fn damaged(&self, why: &str) -> ApiAccessError {
        ApiAccessError::Damaged {
            path: self.file().display().to_string(),
            why: why.to_string(),
        }
    }
}

fn hash_secret(secret: &str) -> Result<String, ApiAccessError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ApiAccessError::Io {
        what: "read random numbers for a salt".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ApiAccessError::Io {
        what: "encode a salt".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiAccessError::Io {
            what: "hash a token".into(),
            source: std::io::Error::other(e.to_string()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> VeId {
        VeId::parse(s).expect("id")
    }

    fn tenant_token(ves: &[&str]) -> NewToken {
        NewToken {
            role: Role::Operator,
            tenant: Some(Tenant::parse("acme").expect("tenant")),
            ves: Some(ves.iter().map(|v| (id(v), format!("uuid-{v}"))).collect()),
            comment: None,
        }
    }

    #[test]
    fn tokens_are_kept_hashed_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::new(dir.path());
        assert!(store.load().expect("empty").is_empty());
        let (token, rec) = store.create(tenant_token(&["101"])).expect("create");
        let text = fs::read_to_string(store.file()).expect("file");
        assert!(!text.contains(token.secret()), "the secret is not stored");
        assert!(text.contains("$argon2id$"));
        let mode = fs::metadata(store.file())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let all = store.load().expect("load");
        assert_eq!(TokenStore::verify(&all, &token), Some(&rec));
        let forged = Token::parse(&format!("kt_{}_{}", token.id, "0".repeat(64))).expect("shape");
        assert_eq!(TokenStore::verify(&all, &forged), None);
        store.revoke(&token.id).expect("revoke");
        assert_eq!(
            TokenStore::verify(&store.load().expect("load"), &token),
            None
        );
        assert!(matches!(
            store.revoke(&token.id),
            Err(ApiAccessError::NoSuchToken(_))
        ));
    }

    #[test]
    fn scopes_follow_the_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::new(dir.path());
        let mut admin_tenant = tenant_token(&["1"]);
        admin_tenant.role = Role::Admin;
        let mut no_ves = tenant_token(&[]);
        no_ves.ves = None;
        let mut ves_alone = tenant_token(&["1"]);
        ves_alone.tenant = None;
        for bad in [admin_tenant, no_ves, ves_alone] {
            assert!(matches!(
                store.create(bad),
                Err(ApiAccessError::BadInput(_))
            ));
        }
        assert!(!store.file().exists(), "a refused token writes nothing");
        let (t, _) = store.create(tenant_token(&["1"])).expect("create");
        let r = store
            .set_ves(&t.id, [(id("2"), "u".to_string())].into_iter().collect())
            .expect("set");
        assert!(r.principal().sees(&id("2")) && !r.principal().sees(&id("1")));
    }

    #[test]
    fn a_damaged_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::new(dir.path());
        fs::create_dir_all(dir.path().join("api")).expect("mkdir");
        fs::write(store.file(), "{not json").expect("write");
        let e = store.load().expect_err("damaged");
        assert!(e.to_string().contains("tokens.json is damaged"), "{e}");
    }
}
