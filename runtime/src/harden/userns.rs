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
