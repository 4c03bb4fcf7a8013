//! `[rootfs]`: whether a spec may have a writable rootfs, and the size of its writable
//! layer. Off unless a profile says `writable = true` (with a `size`).

use serde::Deserialize;
use toml::Spanned;

use super::{parse_size, RawValue, Src};
use crate::error::ProfileError;
use crate::profile::RootfsPolicy;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRootfs {
    writable: Option<Spanned<bool>>,
    size: Option<Spanned<RawValue>>,
}

/// The `[rootfs]` table, which replaces the parent's as a whole.
pub(super) fn rootfs(src: &Src<'_>, raw: Spanned<RawRootfs>) -> Result<RootfsPolicy, ProfileError> {
    let span = raw.span();
    let raw = raw.into_inner();
    let writable = raw.writable.as_ref().is_some_and(|w| *w.get_ref());
    let size_bytes =
        match &raw.size {
            None if writable => return Err(src.err(
                span,
                "rootfs.size",
                "required when rootfs.writable = true (the writable layer is a size-limited tmpfs)",
            )),
            None => None,
            Some(s) if !writable => {
                return Err(src.err(
                    s.span(),
                    "rootfs.size",
                    "only meaningful with rootfs.writable = true",
                ))
            }
            Some(s) => Some(
                parse_size(&s.get_ref().into()).map_err(|m| src.err(s.span(), "rootfs.size", m))?,
            ),
        };
    Ok(RootfsPolicy {
        writable,
        size_bytes,
    })
}
