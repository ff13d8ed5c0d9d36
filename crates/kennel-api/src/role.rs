//! Roles and the principal a request acts as.
//!
//! A **viewer** reads; an **operator** also acts on VEs (start, stop,
//! restart, kill, reinstall, console, shell); an **admin** does everything
//! the CLI does (create, destroy, templates, tokens). A token of a
//! **tenant** sees only its own VEs: every other VE answers exactly as a
//! missing one would, so a tenant cannot learn that it exists. A tenant's
//! token is never an admin's.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use kennel_ve::VeId;
use serde::{Deserialize, Serialize};

use crate::error::ApiAccessError;
use crate::token::TokenId;

/// What a token may do, weakest first (the order is the comparison).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ApiAccessError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(ApiAccessError::BadInput(format!(
                "unknown role '{}': use viewer, operator or admin",
                s.escape_default()
            ))),
        }
    }
}

/// A tenant's name: `[a-z0-9][a-z0-9._-]{0,62}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tenant(String);

impl Tenant {
    pub fn parse(s: &str) -> Result<Self, ApiAccessError> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if ok {
            Ok(Tenant(s.to_string()))
        } else {
            Err(ApiAccessError::BadInput(format!(
                "invalid tenant '{}': use 1-63 characters a-z, 0-9, '.', '_' and '-', starting with a letter or digit",
                s.escape_default()
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Tenant {
    type Error = ApiAccessError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Tenant::parse(&s)
    }
}

impl From<Tenant> for String {
    fn from(t: Tenant) -> String {
        t.0
    }
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token it showed; `None`: root on the service's Unix socket.
    pub token: Option<TokenId>,
    pub role: Role,
    pub tenant: Option<Tenant>,
    /// The VEs it may see and touch, each with the uuid it had when it
    /// was granted (a VE destroyed and made again under the same id is
    /// another VE, and not granted); `None`: every VE.
    pub ves: Option<BTreeMap<VeId, String>>,
}

impl Principal {
    /// Root on the Unix socket: an admin of everything.
    pub fn root() -> Self {
        Principal {
            token: None,
            role: Role::Admin,
            tenant: None,
            ves: None,
        }
    }

    /// Whether VE `id` may exist for this principal at all (its uuid is
    /// checked by [`Principal::sees_uuid`] once the VE is read).
    pub fn sees(&self, id: &VeId) -> bool {
        self.ves.as_ref().is_none_or(|v| v.contains_key(id))
    }

    /// Whether VE `id`, whose uuid is `uuid`, is the one granted.
    pub fn sees_uuid(&self, id: &VeId, uuid: &str) -> bool {
        self.ves
            .as_ref()
            .is_none_or(|v| v.get(id).is_some_and(|u| u == uuid))
    }

    /// Whether its role is at least `need`.
    pub fn may(&self, need: Role) -> bool {
        self.role >= need
    }

    /// An admin of the whole host (no tenant): templates, tokens, create.
    pub fn is_host_admin(&self) -> bool {
        self.role == Role::Admin && self.tenant.is_none() && self.ves.is_none()
    }

    /// Who it is, for the audit log and events.
    pub fn who(&self) -> String {
        match (&self.token, &self.tenant) {
            (None, _) => "root (unix socket)".into(),
            (Some(t), Some(tenant)) => format!("token {t} (tenant {tenant})"),
            (Some(t), None) => format!("token {t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> VeId {
        VeId::parse(s).expect("id")
    }

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for r in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(r.as_str().parse::<Role>().expect("role"), r);
        }
        let e = "root".parse::<Role>().expect_err("not a role");
        assert!(e.to_string().contains("viewer, operator or admin"), "{e}");
    }

    #[test]
    fn tenant_names() {
        for ok in ["acme", "a", "acme-1.eu_west", "0"] {
            Tenant::parse(ok).expect(ok);
        }
        for bad in ["", "-a", "Acme", "a/b", "a b", &"x".repeat(64), "a\n"] {
            assert!(Tenant::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_tenant_sees_only_its_ves() {
        let p = Principal {
            token: None,
            role: Role::Operator,
            tenant: Some(Tenant::parse("acme").expect("tenant")),
            ves: Some(
                [(id("101"), "u1".to_string()), (id("102"), "u2".to_string())]
                    .into_iter()
                    .collect(),
            ),
        };
        assert!(p.sees(&id("101")) && !p.sees(&id("103")));
        assert!(p.sees_uuid(&id("101"), "u1") && !p.sees_uuid(&id("101"), "u9"));
        assert!(!p.sees_uuid(&id("103"), "u1"));
        assert!(p.may(Role::Viewer) && p.may(Role::Operator) && !p.may(Role::Admin));
        assert!(!p.is_host_admin());
        assert!(Principal::root().sees(&id("103")) && Principal::root().is_host_admin());
    }
}
