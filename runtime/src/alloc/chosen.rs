//! Ranges a caller chose: a Kubernetes pod with `hostUsers: false` arrives with the kubelet's
//! uid/gid mapping already in its spec. Ward runs it on that range when the range overlaps
//! nothing held on the node (Ward's own slots and other callers' ranges, in every range table
//! that shares the node's claims dir), and holds it node-wide for the pod's life like a slot.
//!
//! A claim file `r<first host id>-<size>` in the claims dir names the holder's state path, as
//! a slot's claim file does.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{AllocError, Allocator, Table};
use crate::harden::IdRange;

/// A caller-chosen range in a table: its holder and the containers sharing it (a pod's).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Chosen {
    pub size: u32,
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub shared: BTreeSet<String>,
}

impl Chosen {
    fn range(&self, start: u32) -> IdRange {
        IdRange {
            host_start: start,
            size: self.size,
        }
    }

    fn holds(&self, holder: &str) -> bool {
        self.owner == holder || self.shared.contains(holder)
    }
}

fn end(r: &IdRange) -> u64 {
    u64::from(r.host_start) + u64::from(r.size)
}

pub(super) fn overlaps(a: &IdRange, b: &IdRange) -> bool {
    u64::from(a.host_start) < end(b) && u64::from(b.host_start) < end(a)
}

/// Claim file name of a chosen range.
fn claim_name(r: &IdRange) -> String {
    format!("r{}-{}", r.host_start, r.size)
}

fn parse_claim_name(name: &str) -> Option<IdRange> {
    let (start, size) = name.strip_prefix('r')?.split_once('-')?;
    Some(IdRange {
        host_start: start.parse().ok()?,
        size: size.parse().ok()?,
    })
}

impl Table {
    /// The chosen range `holder` holds (as owner or sharer), by its first host id.
    pub(super) fn chosen_of(&self, holder: &str) -> Option<u32> {
        self.chosen
            .iter()
            .find(|(_, c)| c.holds(holder))
            .map(|(s, _)| *s)
    }

    /// [`Table::retain_holders`] for chosen ranges: a range whose owner went passes to a
    /// sharer, and is dropped when none remains.
    pub(super) fn retain_chosen(&mut self, keep: &impl Fn(&str) -> bool) {
        self.chosen.retain(|_, c| {
            c.shared.retain(|m| keep(m));
            if !keep(&c.owner) {
                match c.shared.pop_first() {
                    Some(heir) => c.owner = heir,
                    None => return false,
                }
            }
            true
        });
    }
}

impl Allocator {
    /// The range `holder` holds in `t`, slot or chosen.
    pub(super) fn held(&self, t: &Table, holder: &str) -> Option<IdRange> {
        t.slot_of(holder)
            .map(|s| self.range_of(s))
            .or_else(|| t.chosen_of(holder).map(|s| t.chosen[&s].range(s)))
    }

    /// Let `member` share the chosen range `owner` holds.
    pub(super) fn share_chosen(t: &mut Table, owner: &str, member: &str) -> Option<IdRange> {
        let start = t.chosen_of(owner)?;
        let c = t.chosen.get_mut(&start)?;
        if c.owner != member {
            c.shared.insert(member.to_string());
        }
        Some(c.range(start))
    }

    /// Every range held on the node with its holder: this table's slots and chosen ranges
    /// (by container id), and other tables' live claims (by the claimant's state path).
    fn node_ranges(&self, t: &Table) -> Vec<(IdRange, String)> {
        let mut out: Vec<(IdRange, String)> = t
            .slots
            .iter()
            .map(|(s, o)| (self.range_of(*s), o.clone()))
            .chain(t.chosen.iter().map(|(s, c)| (c.range(*s), c.owner.clone())))
            .collect();
        out.extend(
            self.foreign_ranges()
                .into_iter()
                .map(|(r, who, _)| (r, who)),
        );
        out
    }

    /// Live claims of other tables: slots and chosen ranges, with the claimant and whether
    /// the claim is a chosen range.
    fn foreign_ranges(&self) -> Vec<(IdRange, String, bool)> {
        let ours = format!("{}/", self.dir.display());
        let Ok(rd) = std::fs::read_dir(&self.cfg.claims_dir) else {
            return vec![];
        };
        rd.flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                let (range, chosen) = match name.parse::<u32>() {
                    Ok(slot) => (self.range_of(slot), false),
                    Err(_) => (parse_claim_name(&name)?, true),
                };
                let who = std::fs::read_to_string(e.path()).ok()?;
                let who = who.trim().to_string();
                (!who.starts_with(&ours) && Path::new(&who).exists())
                    .then_some((range, who, chosen))
            })
            .collect()
    }

    /// Whether slot `slot` would overlap a chosen range held anywhere on the node.
    pub(super) fn slot_hits_chosen(&self, t: &Table, slot: u32) -> bool {
        let r = self.range_of(slot);
        t.chosen.iter().any(|(s, c)| overlaps(&c.range(*s), &r))
            || self
                .foreign_ranges()
                .iter()
                .any(|(c, _, chosen)| *chosen && overlaps(c, &r))
    }

    /// Hold the caller-chosen `range` for `owner`, in one locked step with `identity()` (as
    /// [`Allocator::claim_new`]). Refused when it overlaps a range held on the node, naming
    /// both holders; never includes host id 0.
    pub fn claim_chosen(
        &self,
        owner: &str,
        range: IdRange,
        identity: impl FnOnce() -> Result<(), AllocError>,
        alive: impl Fn(&str) -> bool,
    ) -> Result<IdRange, AllocError> {
        if range.host_start == 0 || range.size == 0 || end(&range) > u64::from(u32::MAX) + 1 {
            return Err(AllocError::Chosen {
                holder: owner.to_string(),
                range,
                reason: "not a range of host ids above 0".into(),
            });
        }
        self.with_table(|t| {
            identity()?;
            match self.held(t, owner) {
                Some(r) if r == range => return Ok(r),
                Some(r) => {
                    return Err(AllocError::HoldsAnother {
                        member: owner.to_string(),
                        range: r,
                    })
                }
                None => {}
            }
            t.retain_holders(&alive);
            if let Some((other, holder)) = self
                .node_ranges(t)
                .into_iter()
                .find(|(r, _)| overlaps(r, &range))
            {
                return Err(AllocError::Chosen {
                    holder: owner.to_string(),
                    range,
                    reason: format!(
                        "overlaps host ids {}..{} held by {holder}",
                        other.host_start,
                        end(&other)
                    ),
                });
            }
            t.chosen.insert(
                range.host_start,
                Chosen {
                    size: range.size,
                    owner: owner.to_string(),
                    shared: BTreeSet::new(),
                },
            );
            Ok(range)
        })
    }

    /// Make the claims dir hold one file per chosen range of this table, and none for chosen
    /// ranges it no longer holds.
    pub(super) fn sync_chosen_claims(&self, t: &Table) -> std::io::Result<()> {
        let ours = format!("{}/", self.dir.display());
        if let Ok(rd) = std::fs::read_dir(&self.cfg.claims_dir) {
            for e in rd.flatten() {
                let Some(r) = e.file_name().to_str().and_then(parse_claim_name) else {
                    continue;
                };
                let who = std::fs::read_to_string(e.path()).unwrap_or_default();
                let held = t
                    .chosen
                    .get(&r.host_start)
                    .is_some_and(|c| c.size == r.size);
                if who.starts_with(&ours) && !held {
                    std::fs::remove_file(e.path())?;
                }
            }
        }
        for (start, c) in &t.chosen {
            let want = self.claimant(&c.owner);
            let p = self.cfg.claims_dir.join(claim_name(&c.range(*start)));
            if std::fs::read_to_string(&p).ok().as_deref() != Some(want.as_str()) {
                std::fs::write(&p, &want)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UsernsConfig;

    fn cfg(claims: &Path) -> UsernsConfig {
        UsernsConfig {
            base: 100_000,
            size: 1000,
            count: 4,
            claims_dir: claims.to_path_buf(),
            ..Default::default()
        }
    }

    fn r(host_start: u32, size: u32) -> IdRange {
        IdRange { host_start, size }
    }

    #[test]
    fn chosen_range_is_held_and_refuses_overlaps_naming_both_holders() {
        let claims = tempfile::tempdir().unwrap();
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Allocator::new(da.path(), &cfg(claims.path()));
        let b = Allocator::new(db.path(), &cfg(claims.path()));
        let ok = || Ok(());
        // Ward's slot 0 (100000..101000) for "w".
        std::fs::create_dir(da.path().join("w")).unwrap();
        assert_eq!(a.allocate("w", |_| true).unwrap(), r(100_000, 1000));
        // A chosen range over it: refused, naming both.
        let e = a
            .claim_chosen("pod", r(100_500, 1000), ok, |_| true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pod") && e.contains("held by w"), "{e}");
        // A free chosen range: held, and idempotent for its owner.
        std::fs::create_dir(da.path().join("pod")).unwrap();
        let got = a
            .claim_chosen("pod", r(200_000, 500), ok, |_| true)
            .unwrap();
        assert_eq!(got, r(200_000, 500));
        assert_eq!(
            a.claim_chosen("pod", r(200_000, 500), ok, |_| true)
                .unwrap(),
            got
        );
        assert!(claims.path().join("r200000-500").exists());
        // Another table on the node sees it: its overlapping request names the claimant.
        let e = b
            .claim_chosen("other", r(200_400, 10), ok, |_| true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("other") && e.contains("/pod"), "{e}");
        // Host id 0 is never a range.
        assert!(a.claim_chosen("z", r(0, 10), ok, |_| true).is_err());
        // A pod container shares it (its state dir is what other tables see once it holds
        // the range alone); the range is freed by the last holder only.
        std::fs::create_dir(da.path().join("c1")).unwrap();
        assert_eq!(a.share("pod", "c1").unwrap(), got);
        a.release("pod").unwrap();
        assert!(b
            .claim_chosen("other", r(200_000, 10), ok, |_| true)
            .is_err());
        a.release("c1").unwrap();
        assert!(!claims.path().join("r200000-500").exists());
        b.claim_chosen("other", r(200_000, 10), ok, |_| true)
            .unwrap();
    }

    #[test]
    fn slots_skip_chosen_ranges() {
        let claims = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        let a = Allocator::new(d.path(), &cfg(claims.path()));
        // Chosen 100500..101500 covers parts of slots 0 and 1.
        a.claim_chosen("pod", r(100_500, 1000), || Ok(()), |_| true)
            .unwrap();
        assert_eq!(a.allocate("w", |_| true).unwrap(), r(102_000, 1000));
    }
}
