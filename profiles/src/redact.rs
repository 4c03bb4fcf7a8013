//! Errors about a file that is not valid TOML must not show the file: `extends` may name any
//! readable path (`/etc/shadow`), and the error reaches logs and other users' terminals.
//! Only what Ward itself knows is kept: the profile format's own key names and punctuation.

/// Every key of the profile format (tables and fields, at any depth).
const KNOWN_KEYS: &[&str] = &[
    "name",
    "description",
    "extends",
    "capabilities",
    "seccomp",
    "default_action",
    "remove",
    "allow",
    "log",
    "deny",
    "kill",
    "rule",
    "syscall",
    "action",
    "args",
    "comment",
    "index",
    "op",
    "value",
    "values",
    "mask",
    "bits",
    "landlock",
    "exec",
    "read",
    "read_exec",
    "write",
    "tcp_bind",
    "tcp_connect",
    "tmpfs",
    "path",
    "size",
    "mode",
    "noexec",
    "rootfs",
    "writable",
    "limits",
    "pids",
    "memory",
    "cpu_shares",
    "cpu_quota_us",
    "cpu_period_us",
    "namespaces",
    "shareable",
];

/// `key` with every component that is not a key of the format replaced by `(unknown key)`:
/// the text a key was guessed from may be any line of any file (a password, a key name of
/// another program's TOML). The line number still locates it for the profile's author.
pub(crate) fn key(key: String) -> String {
    if key.is_empty() {
        return "(unknown key)".to_owned();
    }
    key.split('.')
        .map(|k| {
            if KNOWN_KEYS.contains(&k.trim()) {
                k.trim()
            } else {
                "(unknown key)"
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A TOML or serde message with every quoted part (`` `x` `` or `"x"`) that is neither a
/// key of the format nor bare punctuation replaced by `…`: serde quotes unknown fields and
/// values ("unknown field `password`", "invalid type: string \"hunter2\"").
pub(crate) fn message(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(open) = rest.find(['`', '"']) {
        let q = rest[open..].chars().next().expect("found");
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(q) {
            Some(close) => {
                let inner = &after[..close];
                let safe = KNOWN_KEYS.contains(&inner)
                    || inner.chars().all(|c| !c.is_alphanumeric() && c != '\\');
                out.push(q);
                out.push_str(if safe { inner } else { "…" });
                out.push(q);
                rest = &after[close + 1..];
            }
            None => {
                // An unbalanced quote: drop what follows, it may be file text.
                out.push(q);
                out.push('…');
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_format_words_drops_file_text() {
        assert_eq!(key("seccomp.allow".into()), "seccomp.allow");
        assert_eq!(
            key("root:$y$SECRET:19000:0:99999:7:::".into()),
            "(unknown key)"
        );
        assert_eq!(key("hunter2".into()), "(unknown key)");
        assert_eq!(key("seccomp.bogus".into()), "seccomp.(unknown key)");
        assert_eq!(
            message("key with no value, expected `=`"),
            "key with no value, expected `=`"
        );
        assert_eq!(
            message("unknown field `password`, expected one of `name`, `extends`"),
            "unknown field `…`, expected one of `name`, `extends`"
        );
        assert_eq!(
            message("invalid type: string \"hunter2\", expected u64"),
            "invalid type: string \"…\", expected u64"
        );
        assert_eq!(message("bad `secret"), "bad `…");
    }
}
