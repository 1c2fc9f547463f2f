//! How much memory this process may use: what decides that `train` streams its data.

/// The bytes this process may still use: the system's available memory, or less when a
/// cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`) limits the process — as a
/// container or a batch scheduler's job does. `None` where neither can be read (not
/// Linux).
pub fn budget() -> Option<u64> {
    let available = meminfo_available();
    let limit = cgroup_room();
    match (available, limit) {
        (Some(a), Some(l)) => Some(a.min(l)),
        (a, l) => a.or(l),
    }
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn meminfo_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The room left under this process's memory cgroup limit, if it has one.
fn cgroup_room() -> Option<u64> {
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let read =
        |path: String| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    for line in groups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        // v2: one unified hierarchy ("0::/path").
        if controllers.is_empty() {
            let dir = format!("/sys/fs/cgroup{path}");
            if let (Some(max), Some(used)) = (
                read(format!("{dir}/memory.max")),
                read(format!("{dir}/memory.current")),
            ) {
                return Some(max.saturating_sub(used));
            }
        }
        // v1: the memory controller's own hierarchy; an unlimited group reads ~2⁶³.
        if controllers.split(',').any(|c| c == "memory") {
            let dir = format!("/sys/fs/cgroup/memory{path}");
            let limit = read(format!("{dir}/memory.limit_in_bytes"))?;
            let used = read(format!("{dir}/memory.usage_in_bytes")).unwrap_or(0);
            if limit < 1 << 60 {
                return Some(limit.saturating_sub(used));
            }
        }
    }
    None
}
