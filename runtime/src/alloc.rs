//! Host uid/gid ranges for user namespaces: each container (or pod) gets its own range that
//! overlaps no other live container's and never includes host id 0. The table lives under
//! `--root`, guarded by a file lock so concurrent `ward` calls are safe, and a range is freed
//! when its owner is deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::UsernsConfig;
use crate::harden::IdRange;
use crate::sys::{self, SysError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AllocError {
    #[error("user namespace ranges: all {count} ranges of {size} ids are in use (userns.count in the node config)")]
    Exhausted { count: u32, size: u32 },
    #[error("user namespace ranges: {0}")]
    Sys(#[from] SysError),
    #[error("user namespace ranges: {path}: {message}")]
    Table { path: PathBuf, message: String },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Table {
    /// slot -> owner container id
    slots: BTreeMap<u32, String>,
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

    fn with_table<T>(
        &self,
        f: impl FnOnce(&mut Table) -> Result<T, AllocError>,
    ) -> Result<T, AllocError> {
        let _lock = sys::lock_exclusive(&self.dir.join("ranges.lock"))?;
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
        self.with_table(|t| {
            if let Some((slot, _)) = t.slots.iter().find(|(_, o)| o.as_str() == owner) {
                return Ok(self.range_of(*slot));
            }
            t.slots.retain(|_, o| alive(o));
            let slot = (0..self.cfg.count)
                .find(|s| !t.slots.contains_key(s))
                .ok_or(AllocError::Exhausted {
                    count: self.cfg.count,
                    size: self.cfg.size,
                })?;
            t.slots.insert(slot, owner.to_string());
            Ok(self.range_of(slot))
        })
    }

    pub fn release(&self, owner: &str) -> Result<(), AllocError> {
        self.with_table(|t| {
            t.slots.retain(|_, o| o != owner);
            Ok(())
        })
    }

    /// Owners holding a range now.
    pub fn owners(&self) -> Result<Vec<String>, AllocError> {
        self.with_table(|t| Ok(t.slots.values().cloned().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_disjoint_release_reclaim() {
        let d = tempfile::tempdir().unwrap();
        let cfg = UsernsConfig {
            base: 100_000,
            size: 1000,
            count: 3,
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
    fn concurrent_allocations_do_not_overlap() {
        let d = tempfile::tempdir().unwrap();
        let cfg = UsernsConfig {
            base: 100_000,
            size: 10,
            count: 64,
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
