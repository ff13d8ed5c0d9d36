//! Which events a client gets: those of the VEs its token may see (each
//! event's VE id *and* uuid, so that a VE made again under a granted id
//! is not the tenant's), narrowed by what it asked for (`?ve=101,102`,
//! `?type=state,oom`).

use std::collections::BTreeSet;

use kennel_api::Principal;
use kennel_ve::VeId;

use super::{Event, EventKind};

/// The most VEs one filter names.
const MAX_VES: usize = 10_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("ve: {0}")]
    Ve(String),
    #[error("type: '{0}' is no event type (use {types})", types = EventKind::TYPES.join(", "))]
    Type(String),
    #[error("{0}: name at least one (or leave the parameter out)")]
    Empty(&'static str),
}

/// What a client asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these VEs (`None`: all it may see).
    ves: Option<BTreeSet<VeId>>,
    /// Only these types.
    types: Option<BTreeSet<&'static str>>,
}

fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

impl Filter {
    /// From the comma-separated lists `ves` and `types`.
    pub fn parse(ves: Option<&str>, types: Option<&str>) -> Result<Self, FilterError> {
        let ves = ves
            .map(|list| {
                let set = items(list)
                    .map(|s| VeId::parse(s).map_err(|e| FilterError::Ve(e.to_string())))
                    .collect::<Result<BTreeSet<_>, _>>()?;
                if set.is_empty() {
                    return Err(FilterError::Empty("ve"));
                }
                if set.len() > MAX_VES {
                    return Err(FilterError::Ve(format!("at most {MAX_VES} VEs")));
                }
                Ok(set)
            })
            .transpose()?;
        let types = types
            .map(|list| {
                let set = items(list)
                    .map(|t| {
                        EventKind::TYPES
                            .iter()
                            .find(|k| **k == t)
                            .copied()
                            .ok_or_else(|| FilterError::Type(t.chars().take(40).collect()))
                    })
                    .collect::<Result<BTreeSet<_>, _>>()?;
                if set.is_empty() {
                    return Err(FilterError::Empty("type"));
                }
                Ok(set)
            })
            .transpose()?;
        Ok(Filter { ves, types })
    }

    /// Whether `who` gets event `e`.
    pub fn matches(&self, e: &Event, who: &Principal) -> bool {
        let Ok(id) = VeId::parse(&e.ve) else {
            return false;
        };
        who.sees_uuid(&id, &e.uuid)
            && self.ves.as_ref().is_none_or(|v| v.contains(&id))
            && self
                .types
                .as_ref()
                .is_none_or(|t| t.contains(e.kind.type_name()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kennel_api::Role;

    use super::*;

    fn event(ve: &str, uuid: &str, kind: EventKind) -> Event {
        Event {
            seq: 1,
            time: String::new(),
            ve: ve.into(),
            uuid: uuid.into(),
            kind,
        }
    }

    fn tenant(grants: &[(&str, &str)]) -> Principal {
        let mut p = Principal::root();
        p.role = Role::Operator;
        p.ves = Some(
            grants
                .iter()
                .map(|(id, u)| (VeId::parse(id).unwrap(), u.to_string()))
                .collect::<BTreeMap<_, _>>(),
        );
        p
    }

    #[test]
    fn ves_and_types_narrow_the_stream() {
        let root = Principal::root();
        let all = Filter::parse(None, None).unwrap();
        let oom = event("101", "u1", EventKind::Oom { kills: 1, total: 1 });
        let made = event("102", "u2", EventKind::Created);
        assert!(all.matches(&oom, &root) && all.matches(&made, &root));
        let f = Filter::parse(Some("101, 103"), Some("state,oom")).unwrap();
        assert!(f.matches(&oom, &root));
        assert!(!f.matches(&made, &root), "another VE");
        let f = Filter::parse(Some("102"), Some("state")).unwrap();
        assert!(!f.matches(&made, &root), "another type");
    }

    #[test]
    fn a_tenant_sees_only_its_own_ve_by_id_and_uuid() {
        let acme = tenant(&[("101", "u1")]);
        let all = Filter::default();
        assert!(all.matches(&event("101", "u1", EventKind::Created), &acme));
        assert!(!all.matches(&event("102", "u2", EventKind::Created), &acme));
        assert!(
            !all.matches(&event("101", "u9", EventKind::Created), &acme),
            "a VE made again under the granted id"
        );
        // Asking for another VE by name does not widen the grant.
        let f = Filter::parse(Some("102"), None).unwrap();
        assert!(!f.matches(&event("102", "u2", EventKind::Destroyed), &acme));
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(matches!(
            Filter::parse(Some("1/2"), None),
            Err(FilterError::Ve(_))
        ));
        assert_eq!(
            Filter::parse(None, Some("state,bogus")),
            Err(FilterError::Type("bogus".into()))
        );
        assert_eq!(
            Filter::parse(Some(" , "), None),
            Err(FilterError::Empty("ve"))
        );
        assert_eq!(
            Filter::parse(None, Some("")),
            Err(FilterError::Empty("type"))
        );
        assert!(Filter::parse(None, Some("limit_hit,created,destroyed")).is_ok());
    }
}
