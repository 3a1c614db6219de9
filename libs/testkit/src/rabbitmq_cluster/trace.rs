//! [`ClusterTrace`]: finding what a test cluster may have left running.

/// The process groups (one per node, one for `epmd`) and command-line markers (a
/// node's directory, `epmd`'s port) of a cluster's processes.
pub struct ClusterTrace {
    pub(super) groups: Vec<i32>,
    pub(super) markers: Vec<String>,
}

impl ClusterTrace {
    /// The processes still alive (zombies aside) in one of the cluster's process
    /// groups or with one of its markers on their command line: `pid command`.
    pub fn leftover_processes(&self) -> Vec<String> {
        let mut left = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            let fields: Vec<&str> = after.split_whitespace().collect();
            if fields.first() == Some(&"Z") {
                continue;
            }
            let group = fields.get(2).and_then(|g| g.parse::<i32>().ok());
            let cmdline = std::fs::read(entry.path().join("cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            let ours = group.is_some_and(|g| self.groups.contains(&g))
                || self.markers.iter().any(|m| cmdline.contains(m.as_str()));
            if ours && pid != std::process::id() as i32 {
                left.push(format!("{pid} {}", cmdline.trim()));
            }
        }
        left
    }
}
