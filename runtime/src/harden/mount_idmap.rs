//! Idmapped bind mounts asked for by the spec (`mounts[].uidMappings`/`gidMappings`, the
//! `idmap`/`ridmap` options; runtime-spec 1.2): containerd 2 asks for them on every volume of a
//! user-namespaced pod, with the pod's own mapping.
//!
//! Ward idmaps every bind volume anyway, with the container's own mapping, on the detached
//! clone it makes from the resolved handle (prepare.rs; `rbind` recursively). So a request
//! for exactly that mapping is what Ward does already: it is accepted, and the fields are
//! taken out of the spec (libcontainer 0.7 refuses them, and must not idmap a second time).
//! Any other mapping, or an idmapped mount that is not a bind, is refused naming the field:
//! Ward does not run a volume under ids the container's user namespace does not have.

use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};

use super::mounts::is_bind;
use super::{IdRange, PolicyError};

const IDMAP_OPTIONS: &[&str] = &["idmap", "ridmap"];

/// Whether `maps` is the container's own mapping: container 0 → the range, all of it.
fn is_own(maps: &[LinuxIdMapping], range: &IdRange) -> bool {
    matches!(maps, [m] if m.container_id() == 0
        && m.host_id() == range.host_start
        && m.size() == range.size)
}

fn wants_idmap(m: &Mount) -> bool {
    m.uid_mappings().is_some()
        || m.gid_mappings().is_some()
        || m.options()
            .iter()
            .flatten()
            .any(|o| IDMAP_OPTIONS.contains(&o.as_str()))
}

fn check(i: usize, m: &Mount, range: &IdRange) -> Result<(), PolicyError> {
    if !is_bind(m) {
        return Err(PolicyError::Spec {
            field: format!("mounts[{i}].uidMappings"),
            detail: format!(
                "an idmapped {} mount: only bind mounts are idmapped (with the container's \
                 own mapping)",
                m.typ().as_deref().unwrap_or("untyped")
            ),
        });
    }
    for (field, maps) in [
        ("uidMappings", m.uid_mappings()),
        ("gidMappings", m.gid_mappings()),
    ] {
        if let Some(maps) = maps {
            if !is_own(maps, range) {
                return Err(PolicyError::Spec {
                    field: format!("mounts[{i}].{field}"),
                    detail: format!(
                        "{maps:?} is not the container's own mapping (0 -> {}, {} ids): Ward \
                         idmaps every volume with that mapping and no other",
                        range.host_start, range.size
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Check every idmapped mount against the container's mapping and take the request out of the
/// spec (Ward's own idmap of the volume does it).
pub fn apply(spec: &mut Spec, range: &IdRange) -> Result<(), PolicyError> {
    let Some(mounts) = spec.mounts_mut().as_mut() else {
        return Ok(());
    };
    for (i, m) in mounts.iter_mut().enumerate() {
        if !wants_idmap(m) {
            continue;
        }
        check(i, m, range)?;
        m.set_uid_mappings(None);
        m.set_gid_mappings(None);
        if let Some(opts) = m.options_mut() {
            opts.retain(|o| !IDMAP_OPTIONS.contains(&o.as_str()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxIdMappingBuilder, MountBuilder};

    const RANGE: IdRange = IdRange {
        host_start: 327_680_000,
        size: 65536,
    };

    fn map(host: u32, size: u32) -> Vec<LinuxIdMapping> {
        vec![LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(host)
            .size(size)
            .build()
            .unwrap()]
    }

    fn spec_with(m: Mount) -> Spec {
        let mut s = Spec::default();
        let mut mounts = s.mounts().clone().unwrap_or_default();
        mounts.push(m);
        s.set_mounts(Some(mounts));
        s
    }

    fn cri_volume(uid: Vec<LinuxIdMapping>, gid: Vec<LinuxIdMapping>) -> Mount {
        MountBuilder::default()
            .destination("/etc/hostname")
            .typ("bind")
            .source("/run/containerd/x/hostname")
            .options(vec!["rbind".into(), "rprivate".into(), "rw".into()])
            .uid_mappings(uid)
            .gid_mappings(gid)
            .build()
            .unwrap()
    }

    #[test]
    fn the_containers_own_mapping_is_accepted_and_done_by_ward() {
        let mut s = spec_with(cri_volume(
            map(RANGE.host_start, RANGE.size),
            map(RANGE.host_start, RANGE.size),
        ));
        apply(&mut s, &RANGE).unwrap();
        let m = s.mounts().as_ref().unwrap().last().unwrap().clone();
        assert_eq!((m.uid_mappings(), m.gid_mappings()), (&None, &None));
        assert_eq!(
            m.options().as_deref(),
            Some(&["rbind".to_string(), "rprivate".into(), "rw".into()][..])
        );
    }

    #[test]
    fn another_mapping_is_refused_naming_the_field() {
        let n = Spec::default().mounts().as_ref().map_or(0, |m| m.len());
        for (uid, gid, field) in [
            (
                map(1000, 65536),
                map(RANGE.host_start, RANGE.size),
                "uidMappings",
            ),
            (
                map(RANGE.host_start, RANGE.size),
                map(0, 65536),
                "gidMappings",
            ),
            (
                map(RANGE.host_start, 1),
                map(RANGE.host_start, 1),
                "uidMappings",
            ),
        ] {
            let mut s = spec_with(cri_volume(uid, gid));
            let e = apply(&mut s, &RANGE).unwrap_err().to_string();
            assert!(e.contains(&format!("mounts[{n}].{field}")), "{e}");
        }
    }

    #[test]
    fn an_idmapped_non_bind_is_refused() {
        let m = MountBuilder::default()
            .destination("/data")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec!["idmap".into()])
            .build()
            .unwrap();
        let mut s = spec_with(m);
        let e = apply(&mut s, &RANGE).unwrap_err().to_string();
        assert!(e.contains("only bind mounts"), "{e}");
    }

    #[test]
    fn the_idmap_option_alone_means_the_containers_mapping() {
        let m = MountBuilder::default()
            .destination("/data")
            .typ("bind")
            .source("/srv/data")
            .options(vec!["rbind".into(), "ridmap".into()])
            .build()
            .unwrap();
        let mut s = spec_with(m);
        apply(&mut s, &RANGE).unwrap();
        let m = s.mounts().as_ref().unwrap().last().unwrap().clone();
        assert_eq!(m.options().as_deref(), Some(&["rbind".to_string()][..]));
    }
}
