//! Host uid/gid ranges for user namespaces: each container (or pod) gets its own range that
//! overlaps no other live container's and never includes host id 0. The table lives under
//! `--root`, guarded by a file lock so concurrent `ward` calls are safe, and a range is freed
//! when its owner is deleted.
//!
//! Pods: a pod container joins its sandbox's user namespace (see `pod.rs`), so it shares the
//! sandbox's range ([`Allocator::share`]). A shared range is freed only when the last container
//! holding it is deleted, whichever order the sandbox and its containers go in: a sandbox that
//! dies first must not hand its uids to a new container while its pod's containers still run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::UsernsConfig;
use crate::harden::IdRange;
use crate::sys::{self, SysError};

mod chosen;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AllocError {
    #[error("user namespace ranges: all {count} ranges of {size} ids are in use (userns.count in the node config)")]
    Exhausted { count: u32, size: u32 },
    #[error("user namespace ranges: {0}")]
    Sys(#[from] SysError),
    #[error("user namespace ranges: {path}: {message}")]
    Table { path: PathBuf, message: String },
    #[error("user namespace ranges: pod sandbox {owner} holds no range to share")]
    NotHeld { owner: String },
    #[error("container {0} already exists")]
    Exists(String),
    #[error("user namespace ranges: {member} already holds another range ({}..{})", range.host_start, u64::from(range.host_start) + u64::from(range.size))]
    HoldsAnother { member: String, range: IdRange },
    #[error("user namespace ranges: {holder} asks for host ids {}..{}, which {reason}", range.host_start, u64::from(range.host_start) + u64::from(range.size))]
    Chosen {
        holder: String,
        range: IdRange,
        reason: String,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Table {
    /// slot -> owner container id
    slots: BTreeMap<u32, String>,
    /// slot -> further containers sharing the owner's range (pod containers in the sandbox's
    /// user namespace). The slot stays taken while any of them remains.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    shared: BTreeMap<u32, BTreeSet<String>>,
    /// Caller-chosen ranges (a pod's kubelet mapping), by first host id: see `chosen.rs`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    chosen: BTreeMap<u32, chosen::Chosen>,
}

impl Table {
    fn slot_of(&self, holder: &str) -> Option<u32> {
        self.slots
            .iter()
            .find(|(_, o)| o.as_str() == holder)
            .map(|(s, _)| *s)
            .or_else(|| {
                self.shared
                    .iter()
                    .find(|(_, m)| m.contains(holder))
                    .map(|(s, _)| *s)
            })
    }

    /// Drop every holder for which `keep` is false; a slot whose owner went but whose sharers
    /// remain passes to one of them.
    fn retain_holders(&mut self, keep: impl Fn(&str) -> bool) {
        for members in self.shared.values_mut() {
            members.retain(|m| keep(m));
        }
        let slots: Vec<u32> = self.slots.keys().copied().collect();
        for slot in slots {
            if keep(&self.slots[&slot]) {
                continue;
            }
            match self.shared.get_mut(&slot).and_then(|m| m.pop_first()) {
                Some(heir) => {
                    self.slots.insert(slot, heir);
                }
                None => {
                    self.slots.remove(&slot);
                }
            }
        }
        self.shared
            .retain(|s, m| !m.is_empty() && self.slots.contains_key(s));
        self.retain_chosen(&keep);
    }
}

pub struct Allocator {
    dir: PathBuf,
    cfg: UsernsConfig,
}

impl Allocator {
    pub fn new(dir: &Path, cfg: &UsernsConfig) -> Self {
        Self {
            dir: dir.to_path_buf(),
            cfg: cfg.clone(),
        }
    }

    fn table_path(&self) -> PathBuf {
        self.dir.join("ranges.json")
    }

    /// The node-wide claim marker of `slot`. Its content is the claimant's state path
    /// (`<this table's dir>/<holder>`), which exists while that container does.
    fn claim_path(&self, slot: u32) -> PathBuf {
        self.cfg.claims_dir.join(slot.to_string())
    }

    fn claimant(&self, holder: &str) -> String {
        self.dir.join(holder).display().to_string()
    }

    /// Slots another table's live container holds. Claims of containers that are gone (a
    /// crash) do not count.
    fn foreign_claims(&self) -> BTreeSet<u32> {
        let ours = format!("{}/", self.dir.display());
        let Ok(rd) = std::fs::read_dir(&self.cfg.claims_dir) else {
            return BTreeSet::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let slot: u32 = e.file_name().to_str()?.parse().ok()?;
                let who = std::fs::read_to_string(e.path()).ok()?;
                // A claim is made under the lock after its container's state dir
                // ([`Allocator::claim_new`]): a claimant whose dir is gone is gone.
                (!who.starts_with(&ours) && Path::new(who.trim()).exists()).then_some(slot)
            })
            .collect()
    }

    /// Make the claims dir say what this table holds: a claim per held slot naming its
    /// current holder, none for slots this table no longer holds.
    fn sync_claims(&self, t: &Table) -> Result<(), AllocError> {
        let claims = &self.cfg.claims_dir;
        let cerr = |e: std::io::Error| AllocError::Table {
            path: claims.clone(),
            message: e.to_string(),
        };
        let ours = format!("{}/", self.dir.display());
        if let Ok(rd) = std::fs::read_dir(claims) {
            for e in rd.flatten() {
                let Some(slot) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                let who = std::fs::read_to_string(e.path()).unwrap_or_default();
                if who.starts_with(&ours) && !t.slots.contains_key(&slot) {
                    std::fs::remove_file(e.path()).map_err(cerr)?;
                }
            }
        }
        for (slot, holder) in &t.slots {
            let want = self.claimant(holder);
            let p = self.claim_path(*slot);
            if std::fs::read_to_string(&p).ok().as_deref() != Some(want.as_str()) {
                std::fs::write(&p, &want).map_err(cerr)?;
            }
        }
        self.sync_chosen_claims(t).map_err(cerr)
    }

    fn with_table<T>(
        &self,
        f: impl FnOnce(&mut Table) -> Result<T, AllocError>,
    ) -> Result<T, AllocError> {
        let _lock = sys::lock_exclusive(&self.dir.join("ranges.lock"))?;
        // Then the node-wide lock, always in this order.
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.cfg.claims_dir)
                .map_err(|e| AllocError::Table {
                    path: self.cfg.claims_dir.clone(),
                    message: e.to_string(),
                })?;
        }
        let _node = sys::lock_exclusive(&self.cfg.claims_dir.join(".lock"))?;
        let path = self.table_path();
        let mut table: Table = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| AllocError::Table {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Table::default(),
            Err(e) => {
                return Err(AllocError::Table {
                    path,
                    message: e.to_string(),
                })
            }
        };
        let out = f(&mut table)?;
        self.sync_claims(&table)?;
        let tmp = path.with_extension("json.tmp");
        let data = serde_json::to_vec(&table).expect("serializable");
        std::fs::write(&tmp, data)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| AllocError::Table {
                path,
                message: e.to_string(),
            })?;
        Ok(out)
    }

    fn range_of(&self, slot: u32) -> IdRange {
        IdRange {
            host_start: self.cfg.base + slot * self.cfg.size,
            size: self.cfg.size,
        }
    }

    /// Allocate a range for `owner`. `alive(owner)` says whether an owner in the table still
    /// exists; ranges of owners that vanished (a crash) are reclaimed.
    pub fn allocate(
        &self,
        owner: &str,
        alive: impl Fn(&str) -> bool,
    ) -> Result<IdRange, AllocError> {
        self.claim_new(owner, || Ok(()), alive)
    }

    /// Identity and range in one locked step: `identity()` (which makes the owner's state dir,
    /// failing with [`AllocError::Exists`] if it is there) runs under the table's lock before
    /// the range is chosen. An owner's state dir therefore exists whenever its slot is in the
    /// table, so `alive` may judge an owner by it: a missing dir means gone, never "not made
    /// yet".
    pub fn claim_new(
        &self,
        owner: &str,
        identity: impl FnOnce() -> Result<(), AllocError>,
        alive: impl Fn(&str) -> bool,
    ) -> Result<IdRange, AllocError> {
        self.with_table(|t| {
            identity()?;
            if let Some(range) = self.held(t, owner) {
                return Ok(range);
            }
            t.retain_holders(&alive);
            // Only a new allocation needs the other roots' claims (the node lock is held).
            let foreign = self.foreign_claims();
            let slot = (0..self.cfg.count)
                .find(|s| {
                    !t.slots.contains_key(s)
                        && !foreign.contains(s)
                        && !self.slot_hits_chosen(t, *s)
                })
                .ok_or(AllocError::Exhausted {
                    count: self.cfg.count,
                    size: self.cfg.size,
                })?;
            t.slots.insert(slot, owner.to_string());
            Ok(self.range_of(slot))
        })
    }

    /// Let `member` hold `owner`'s range too (a pod container in its sandbox's user namespace).
    pub fn share(&self, owner: &str, member: &str) -> Result<IdRange, AllocError> {
        self.claim_shared(owner, member, || Ok(()))
    }

    /// [`Allocator::share`] with `identity()` (the member's state dir) made under the lock.
    pub fn claim_shared(
        &self,
        owner: &str,
        member: &str,
        identity: impl FnOnce() -> Result<(), AllocError>,
    ) -> Result<IdRange, AllocError> {
        self.with_table(|t| {
            identity()?;
            let range = self.held(t, owner).ok_or_else(|| AllocError::NotHeld {
                owner: owner.to_string(),
            })?;
            if let Some(other) = self.held(t, member).filter(|r| *r != range) {
                return Err(AllocError::HoldsAnother {
                    member: member.to_string(),
                    range: other,
                });
            }
            if let Some(slot) = t.slot_of(owner) {
                t.shared.entry(slot).or_default().insert(member.to_string());
                return Ok(range);
            }
            Ok(Self::share_chosen(t, owner, member).expect("held above"))
        })
    }

    /// `owner` no longer holds a range; the range is free once no one else shares it.
    pub fn release(&self, owner: &str) -> Result<(), AllocError> {
        self.with_table(|t| {
            t.retain_holders(|o| o != owner);
            Ok(())
        })
    }

    /// Containers holding a range now (owners and sharers).
    pub fn owners(&self) -> Result<Vec<String>, AllocError> {
        self.with_table(|t| {
            Ok(t.slots
                .values()
                .cloned()
                .chain(t.shared.values().flatten().cloned())
                .chain(
                    t.chosen
                        .values()
                        .flat_map(|c| std::iter::once(c.owner.clone()).chain(c.shared.clone())),
                )
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private claims dir per test (the node-wide one is for real runs).
    fn claims_dir() -> PathBuf {
        tempfile::tempdir().unwrap().keep()
    }

    #[test]
    fn two_roots_never_share_a_slot() {
        let claims = claims_dir();
        let cfg = UsernsConfig {
            base: 100_000,
            size: 1000,
            count: 3,
            claims_dir: claims.clone(),
            ..Default::default()
        };
        let (ra, rb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (
            Allocator::new(ra.path(), &cfg),
            Allocator::new(rb.path(), &cfg),
        );
        // A claim names the holder's state dir: alive while it exists.
        std::fs::create_dir(ra.path().join("c1")).unwrap();
        let r1 = a.allocate("c1", |_| true).unwrap();
        let r2 = b.allocate("c2", |_| true).unwrap();
        assert_ne!(r1, r2, "two roots handed out the same range");
        // c1 is gone without release (a crash): once its claim is no longer fresh, it no
        // longer blocks the slot.
        std::fs::remove_dir(ra.path().join("c1")).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
        std::fs::File::options()
            .write(true)
            .open(claims.join("0"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let r3 = b.allocate("c3", |_| true).unwrap();
        assert_eq!(r3, r1);
        // Releasing removes this root's claim only.
        b.release("c2").unwrap();
        assert!(!claims.join("1").exists());
        assert!(claims.join("0").exists());
    }

    #[test]
    fn allocate_disjoint_release_reclaim() {
        let d = tempfile::tempdir().unwrap();
        let cfg = UsernsConfig {
            base: 100_000,
            size: 1000,
            count: 3,
            claims_dir: claims_dir(),
            ..Default::default()
        };
        let a = Allocator::new(d.path(), &cfg);
        let r1 = a.allocate("a", |_| true).unwrap();
        let r2 = a.allocate("b", |_| true).unwrap();
        assert_eq!(r1.host_start, 100_000);
        assert_eq!(r2.host_start, 101_000);
        assert_eq!(a.allocate("a", |_| true).unwrap(), r1);
        a.allocate("c", |_| true).unwrap();
        assert!(matches!(
            a.allocate("d", |_| true),
            Err(AllocError::Exhausted { .. })
        ));
        a.release("b").unwrap();
        assert_eq!(a.allocate("d", |_| true).unwrap(), r2);
        // "a" vanished: its range is reclaimed.
        let e = a.allocate("e", |o| o != "a").unwrap();
        assert_eq!(e, r1);
        assert_eq!(a.owners().unwrap().len(), 3);
    }

    #[test]
    fn shared_range_is_freed_by_the_last_holder() {
        let d = tempfile::tempdir().unwrap();
        let cfg = UsernsConfig {
            base: 100_000,
            size: 1000,
            count: 2,
            claims_dir: claims_dir(),
            ..Default::default()
        };
        let a = Allocator::new(d.path(), &cfg);
        let sandbox = a.allocate("pod", |_| true).unwrap();
        assert_eq!(a.share("pod", "c1").unwrap(), sandbox);
        assert_eq!(a.share("pod", "c2").unwrap(), sandbox);
        assert!(matches!(
            a.share("nobody", "c3"),
            Err(AllocError::NotHeld { .. })
        ));
        // A sharer asking again gets the same range; allocate for it finds it too.
        assert_eq!(a.allocate("c1", |_| true).unwrap(), sandbox);
        // The sandbox goes first: its containers still hold the range.
        a.release("pod").unwrap();
        let other = a.allocate("x", |_| true).unwrap();
        assert_ne!(other, sandbox);
        assert!(matches!(
            a.allocate("y", |_| true),
            Err(AllocError::Exhausted { .. })
        ));
        a.release("c1").unwrap();
        assert!(a.allocate("y", |_| true).is_err());
        let mut owners = a.owners().unwrap();
        owners.sort();
        assert_eq!(owners, vec!["c2", "x"]);
        a.release("c2").unwrap();
        assert_eq!(a.allocate("y", |_| true).unwrap(), sandbox);
    }

    #[test]
    fn dead_sharers_are_reclaimed() {
        let d = tempfile::tempdir().unwrap();
        let cfg = UsernsConfig {
            base: 100_000,
            size: 1000,
            count: 1,
            claims_dir: claims_dir(),
            ..Default::default()
        };
        let a = Allocator::new(d.path(), &cfg);
        let r = a.allocate("pod", |_| true).unwrap();
        a.share("pod", "c1").unwrap();
        // The sandbox vanished (crash) but c1 lives: still taken.
        assert!(a.allocate("n", |o| o == "c1").is_err());
        // Both gone: reclaimed.
        assert_eq!(a.allocate("n", |o| o == "n").unwrap(), r);
        assert_eq!(a.owners().unwrap(), vec!["n"]);
    }

    #[test]
    fn table_without_shared_field_still_reads() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ranges.json"), r#"{"slots":{"0":"old"}}"#).unwrap();
        let cfg = UsernsConfig {
            base: 100_000,
            size: 1000,
            count: 2,
            claims_dir: claims_dir(),
            ..Default::default()
        };
        let a = Allocator::new(d.path(), &cfg);
        assert_eq!(a.share("old", "c").unwrap().host_start, 100_000);
    }

    #[test]
    fn concurrent_allocations_do_not_overlap() {
        let d = tempfile::tempdir().unwrap();
        let cfg = UsernsConfig {
            base: 100_000,
            size: 10,
            count: 64,
            claims_dir: claims_dir(),
            ..Default::default()
        };
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let dir = d.path().to_path_buf();
                let cfg = cfg.clone();
                std::thread::spawn(move || {
                    let a = Allocator::new(&dir, &cfg);
                    (0..4)
                        .map(|j| {
                            a.allocate(&format!("c{i}-{j}"), |_| true)
                                .unwrap()
                                .host_start
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u32> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort();
        let n = all.len();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
