//! Reading an input file (a bundle's config.json, the node config, a profile or the file a
//! profile `extends`) without trusting what the path names: it is opened as an `O_PATH`
//! handle first (opening a device or a FIFO for reading can block or have side effects),
//! checked to be a regular file, re-opened from that handle and read up to a size cap. So
//! `/dev/zero` is refused at once instead of being read until memory runs out, and a FIFO
//! is refused instead of hanging the reader.

use std::ffi::CString;
use std::io::{Error, ErrorKind, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The cap on every input file Ward reads: config.json, node config, profiles.
pub const INPUT_CAP: u64 = 4 << 20;

/// Whether a symlink as the last component is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Follow it (files an administrator names: `--config`, profiles).
    Yes,
    /// Refuse it (files inside a bundle anybody may have written).
    No,
}

fn kind_name(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => "a directory",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFLNK => "a symlink",
        _ => "not a regular file",
    }
}

fn open_raw(path: &CString, flags: libc::c_int) -> Result<OwnedFd, Error> {
    // SAFETY: `path` is a valid NUL-terminated string; the kernel returns a new fd that we
    // take sole ownership of.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Read the regular file `path`, at most `cap` bytes. A missing file keeps
/// `ErrorKind::NotFound`; anything else that is not a regular file of at most `cap` bytes
/// is an error whose text says why ("is a FIFO; refused").
pub fn read_capped(path: &Path, cap: u64, follow: Follow) -> Result<Vec<u8>, Error> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::new(ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let nofollow = match follow {
        Follow::Yes => 0,
        Follow::No => libc::O_NOFOLLOW,
    };
    let handle = open_raw(&c, libc::O_PATH | nofollow)?;
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `handle` is an open fd and `st` a valid, writable struct stat.
    if unsafe { libc::fstat(handle.as_raw_fd(), &mut st) } != 0 {
        return Err(Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Error::other(format!(
            "is {}, not a regular file; refused",
            kind_name(st.st_mode)
        )));
    }
    if st.st_size as u64 > cap {
        return Err(Error::other(format!(
            "is {} bytes, more than the {cap} allowed; refused",
            st.st_size
        )));
    }
    // Re-open the checked object itself (not the path again, which may have changed).
    let again = CString::new(format!("/proc/self/fd/{}", handle.as_raw_fd())).expect("no NUL");
    let fd = open_raw(&again, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY)?;
    let mut out = Vec::with_capacity(st.st_size as usize);
    std::fs::File::from(fd)
        .take(cap + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > cap {
        return Err(Error::other(format!(
            "grew beyond the {cap} bytes allowed while being read; refused"
        )));
    }
    Ok(out)
}

/// [`read_capped`] with [`INPUT_CAP`], as UTF-8 text.
pub fn read_text(path: &Path, follow: Follow) -> Result<String, Error> {
    let b = read_capped(path, INPUT_CAP, follow)?;
    String::from_utf8(b).map_err(|_| Error::new(ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_only_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "hello").unwrap();
        assert_eq!(read_text(&f, Follow::No).unwrap(), "hello");
        let e = read_capped(&f, 4, Follow::No).unwrap_err();
        assert!(e.to_string().contains("more than the 4"), "{e}");

        let e = read_text(Path::new("/dev/zero"), Follow::Yes).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let e = read_text(dir.path(), Follow::Yes).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");

        let fifo = dir.path().join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_text(&fifo, Follow::Yes).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert_eq!(read_text(&link, Follow::Yes).unwrap(), "hello");
        let e = read_text(&link, Follow::No).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");

        let e = read_text(&dir.path().join("missing"), Follow::Yes).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(read_text(&f, Follow::No).is_err());
    }
}
