//! `ward-probe hold-inotify N FILE`: a helper for the runner's "per-user kernel counts"
//! check (not a technique). Opens up to N inotify instances, writes
//! `held K errno=E` to FILE (E: why the next one failed, or `none`), then keeps them
//! open until killed, so the host can count what is left for host root meanwhile.

pub fn hold_inotify(args: &[String]) -> ! {
    let (Some(n), Some(file)) = (
        args.first().and_then(|s| s.parse::<usize>().ok()),
        args.get(1),
    ) else {
        eprintln!("usage: ward-probe hold-inotify N FILE");
        std::process::exit(2)
    };
    let mut held = 0usize;
    let mut errno = "none".to_string();
    while held < n {
        // SAFETY: inotify_init1 takes flags only and returns a new fd or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            errno = if e == libc::EMFILE {
                "EMFILE".into()
            } else {
                format!("{e}")
            };
            break;
        }
        held += 1;
    }
    if let Err(e) = std::fs::write(file, format!("held {held} errno={errno}\n")) {
        eprintln!("hold-inotify: write {file}: {e}");
        std::process::exit(1)
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
