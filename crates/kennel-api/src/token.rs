//! Bearer tokens: `kt_<id>_<secret>`.
//!
//! The id (8 random bytes, hex) names the token in lists, the audit log
//! and revocation, and finds its record without trying every hash; the
//! secret (32 random bytes, hex) is shown once, when the token is made,
//! and only its Argon2id hash is kept ([`crate::store`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ApiAccessError;

const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
const PREFIX: &str = "kt_";

/// A token's public name: 16 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenId(String);

impl TokenId {
    pub fn parse(s: &str) -> Result<Self, ApiAccessError> {
        if is_hex(s, ID_BYTES * 2) {
            Ok(TokenId(s.to_string()))
        } else {
            Err(ApiAccessError::BadInput(format!(
                "invalid token id '{}': a token id is 16 hex digits (see `kennel api token list`)",
                s.escape_default()
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TokenId {
    type Error = ApiAccessError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TokenId::parse(&s)
    }
}

impl From<TokenId> for String {
    fn from(t: TokenId) -> String {
        t.0
    }
}

/// A whole token as a client shows it. Its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub id: TokenId,
    secret: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}, <secret>)", self.id)
    }
}

impl Token {
    /// A new token from the kernel's random numbers.
    pub fn generate() -> Result<Self, ApiAccessError> {
        let mut id = [0u8; ID_BYTES];
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::fill(&mut id)
            .and_then(|()| getrandom::fill(&mut secret))
            .map_err(|e| ApiAccessError::Io {
                what: "read random numbers for a token".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        Ok(Token {
            id: TokenId(hex(&id)),
            secret: hex(&secret),
        })
    }

    /// A token as given in an `Authorization: Bearer` header; `None` if it
    /// is not one (checked before any hash is computed).
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        (is_hex(id, ID_BYTES * 2) && is_hex(secret, SECRET_BYTES * 2)).then(|| Token {
            id: TokenId(id.to_string()),
            secret: secret.to_string(),
        })
    }

    /// The secret part, which the store hashes.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The whole token, to show once.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, self.secret)
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_hides_its_secret() {
        let t = Token::generate().expect("token");
        let shown = t.reveal();
        assert!(
            shown.starts_with("kt_") && shown.len() == 3 + 16 + 1 + 64,
            "{shown}"
        );
        assert_eq!(Token::parse(&shown), Some(t.clone()));
        assert!(!format!("{t:?}").contains(t.secret()));
        assert_ne!(Token::generate().expect("token"), t);
    }

    #[test]
    fn what_is_not_a_token() {
        let good = Token::generate().expect("token").reveal();
        for bad in [
            "",
            "kt_",
            &good[..good.len() - 1],
            &good.replace("kt_", "kx_"),
            &good.to_uppercase(),
            &format!("{good}0"),
            &good.replacen('_', "-", 2),
        ] {
            assert_eq!(Token::parse(bad), None, "{bad:?}");
        }
        assert!(TokenId::parse("0123456789abcdef").is_ok());
        assert!(TokenId::parse("../etc/passwd").is_err());
    }
}
