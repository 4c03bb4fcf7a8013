//! User namespace: always, with the container's own host id range, never host id 0.

use oci_spec::runtime::{
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Spec,
};
use serde::{Deserialize, Serialize};

use super::PolicyError;

/// A host uid/gid range owned by one container (or one pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub host_start: u32,
    pub size: u32,
}

impl IdRange {
    pub fn contains(&self, host_id: u32, len: u32) -> bool {
        host_id >= self.host_start
            && u64::from(host_id) + u64::from(len)
                <= u64::from(self.host_start) + u64::from(self.size)
    }

    pub fn mapping(&self) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(self.host_start)
            .size(self.size)
            .build()
            .expect("all fields set")
    }
}

fn check(field: &str, maps: &[LinuxIdMapping], range: &IdRange) -> Result<(), PolicyError> {
    for m in maps {
        if m.host_id() == 0 || !range.contains(m.host_id(), m.size()) || m.size() == 0 {
            return Err(PolicyError::UserMapping {
                field: field.into(),
                detail: format!(
                    "maps container {} to host {}..{} which is outside the range allocated to this container ({}..{}) or includes host id 0",
                    m.container_id(),
                    m.host_id(),
                    u64::from(m.host_id()) + u64::from(m.size()),
                    range.host_start,
                    u64::from(range.host_start) + u64::from(range.size)
                ),
            });
        }
    }
    Ok(())
}

/// Lowest host id a caller may map: ids below are the host's own users and system accounts
/// (kubelet hands out ranges from 65536 on).
pub const MIN_CHOSEN_HOST_ID: u32 = 65536;

/// The range a spec's own mapping asks for (a Kubernetes `hostUsers: false` pod: the kubelet
/// chose it), or `None` when the spec leaves the mapping to Ward. Ward runs such a spec on
/// that range once the allocator holds it for the container; the mapping must be one
/// contiguous entry from container id 0, the same for uids and gids, never host id 0 nor the
/// host's own users.
pub fn requested(spec: &Spec) -> Result<Option<IdRange>, PolicyError> {
    let Some(linux) = spec.linux() else {
        return Ok(None);
    };
    let uid = linux.uid_mappings().as_deref().unwrap_or_default();
    let gid = linux.gid_mappings().as_deref().unwrap_or_default();
    if uid.is_empty() && gid.is_empty() {
        return Ok(None);
    }
    let one = |field: &str, maps: &[LinuxIdMapping]| -> Result<IdRange, PolicyError> {
        let bad = |detail: String| PolicyError::UserMapping {
            field: field.into(),
            detail,
        };
        let [m] = maps else {
            return Err(bad(format!(
                "has {} entries; Ward runs a caller's mapping only as one contiguous range",
                maps.len()
            )));
        };
        let r = IdRange {
            host_start: m.host_id(),
            size: m.size(),
        };
        let end = u64::from(r.host_start) + u64::from(r.size);
        if m.container_id() != 0 || r.size == 0 || end > u64::from(u32::MAX) + 1 {
            return Err(bad(format!(
                "maps container {}..{} to host {}..{end}; Ward needs container ids from 0",
                m.container_id(),
                u64::from(m.container_id()) + u64::from(r.size),
                r.host_start
            )));
        }
        if r.host_start < MIN_CHOSEN_HOST_ID {
            return Err(bad(format!(
                "maps container 0 to host {}..{end}, outside the range a caller may choose (host ids from {MIN_CHOSEN_HOST_ID} on; lower ones are the host's own users)",
                r.host_start
            )));
        }
        Ok(r)
    };
    for (field, maps) in [("linux.uidMappings", uid), ("linux.gidMappings", gid)] {
        if let Some(m) = maps.iter().find(|m| m.host_id() == 0) {
            return Err(PolicyError::UserMapping {
                field: field.into(),
                detail: format!("maps container {} to host id 0", m.container_id()),
            });
        }
    }
    let u = one("linux.uidMappings", uid)?;
    let g = one("linux.gidMappings", gid)?;
    if u != g {
        return Err(PolicyError::UserMapping {
            field: "linux.gidMappings".into(),
            detail: format!(
                "maps to host {}+{}, not to the uid range {}+{}",
                g.host_start, g.size, u.host_start, u.size
            ),
        });
    }
    Ok(Some(u))
}

/// Give the spec a new user namespace mapped onto `range`. A spec's own mapping is kept only
/// when it stays inside `range`.
pub fn apply(spec: &mut Spec, range: &IdRange) -> Result<(), PolicyError> {
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let namespaces = linux.namespaces_mut().get_or_insert_with(Vec::new);
    match namespaces
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::User)
    {
        Some(ns) if ns.path().is_some() => {
            return Err(PolicyError::Namespace {
                field: "linux.namespaces[user].path".into(),
                detail: "joining an existing user namespace is not allowed".into(),
            })
        }
        Some(_) => {}
        None => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()
                .expect("type set"),
        ),
    }
    set_or_check("linux.uidMappings", linux.uid_mappings_mut(), range)?;
    set_or_check("linux.gidMappings", linux.gid_mappings_mut(), range)
}

fn set_or_check(
    field: &str,
    maps: &mut Option<Vec<LinuxIdMapping>>,
    range: &IdRange,
) -> Result<(), PolicyError> {
    match maps {
        Some(m) if !m.is_empty() => check(field, m, range)?,
        _ => *maps = Some(vec![range.mapping()]),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: IdRange = IdRange {
        host_start: 1 << 20,
        size: 65536,
    };

    #[test]
    fn adds_mapping() {
        let mut s = Spec::default();
        apply(&mut s, &R).unwrap();
        let l = s.linux().as_ref().unwrap();
        assert_eq!(l.uid_mappings().as_ref().unwrap()[0].host_id(), 1 << 20);
        assert!(l
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::User));
    }

    #[test]
    fn refuses_host_root_and_outside() {
        for host in [0_u32, 1000, (1_u32 << 20) + 65535] {
            let mut s = Spec::default();
            let m = LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host)
                .size(2_u32)
                .build()
                .unwrap();
            s.linux_mut()
                .get_or_insert_with(Default::default)
                .set_uid_mappings(Some(vec![m]));
            let e = apply(&mut s, &R).unwrap_err();
            assert!(e.to_string().contains("linux.uidMappings"), "{e}");
        }
    }

    fn spec_with(uid: &[(u32, u32, u32)], gid: &[(u32, u32, u32)]) -> Spec {
        let maps = |v: &[(u32, u32, u32)]| {
            Some(
                v.iter()
                    .map(|&(c, h, n)| {
                        LinuxIdMappingBuilder::default()
                            .container_id(c)
                            .host_id(h)
                            .size(n)
                            .build()
                            .unwrap()
                    })
                    .collect(),
            )
        };
        let mut s = Spec::default();
        let l = s.linux_mut().get_or_insert_with(Default::default);
        l.set_uid_mappings(maps(uid));
        l.set_gid_mappings(maps(gid));
        s
    }

    #[test]
    fn requested_reads_a_kubelet_mapping_and_refuses_the_rest() {
        let k = [(0, 1 << 20, 65536)];
        assert_eq!(
            requested(&spec_with(&k, &k)).unwrap(),
            Some(IdRange {
                host_start: 1 << 20,
                size: 65536
            })
        );
        assert_eq!(requested(&spec_with(&[], &[])).unwrap(), None);
        assert_eq!(requested(&Spec::default()).unwrap(), None);
        for (uid, gid, field) in [
            (
                vec![(0, 0, 65536)],
                vec![(0, 1 << 20, 65536)],
                "linux.uidMappings",
            ),
            (k.to_vec(), vec![(0, 0, 1)], "linux.gidMappings"),
            (vec![], vec![(0, 0, 1)], "linux.gidMappings"),
            (
                vec![(0, 1000, 65536)],
                vec![(0, 1000, 65536)],
                "linux.uidMappings",
            ),
            (
                vec![(1, 1 << 20, 10)],
                vec![(1, 1 << 20, 10)],
                "linux.uidMappings",
            ),
            (
                vec![(0, 1 << 20, 10), (10, 1 << 21, 10)],
                k.to_vec(),
                "linux.uidMappings",
            ),
            (k.to_vec(), vec![(0, 1 << 21, 65536)], "linux.gidMappings"),
            (k.to_vec(), vec![], "linux.gidMappings"),
        ] {
            let e = requested(&spec_with(&uid, &gid)).unwrap_err().to_string();
            assert!(e.contains(field), "{uid:?} {gid:?}: {e}");
        }
    }

    #[test]
    fn keeps_mapping_inside_range() {
        let mut s = Spec::default();
        let m = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id((1_u32 << 20) + 10)
            .size(100u32)
            .build()
            .unwrap();
        s.linux_mut()
            .get_or_insert_with(Default::default)
            .set_uid_mappings(Some(vec![m]));
        apply(&mut s, &R).unwrap();
        let l = s.linux().as_ref().unwrap();
        assert_eq!(l.uid_mappings().as_ref().unwrap()[0].size(), 100);
    }
}
