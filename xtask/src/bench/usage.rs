//! CPU time and memory, from `/proc`: each service (the sum of its processes, with
//! `--replicas`), each server of the
//! infrastructure (the process listening on its port and every process under it:
//! PostgreSQL's backends come and go, and the postmaster's `cutime` keeps the CPU of
//! those it reaped), the peer's processes, this load generator, and the machine.

use std::collections::{BTreeMap, HashMap, HashSet};

use sales_testkit::launch::Process;

/// Linux reports CPU times in USER_HZ ticks, 1/100 s on every platform it runs on here.
const TICKS_PER_SECOND: f64 = 100.0;

/// One process's line of `/proc/<pid>/stat`.
struct Stat {
    pid: u32,
    ppid: u32,
    /// utime + stime.
    own: u64,
    /// cutime + cstime: its children that have exited and been waited for.
    reaped: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let n = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        pid,
        ppid: u32::try_from(n(1)?).ok()?,
        own: n(11)? + n(12)?,
        reaped: n(13)? + n(14)?,
    })
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Which processes a group is.
#[derive(Clone, Debug)]
enum Members {
    /// A service's processes (several with `--replicas`).
    Pids(Vec<u32>),
    /// A process and all its descendants.
    Tree(u32),
    /// Every process whose command line contains this, and their descendants.
    Cmdline(String),
    /// The load generator: this process (not its children: `cargo build` was one).
    Me,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    /// The peer's, not ours.
    pub peer: bool,
    members: Members,
}

/// CPU milliseconds per group, and the machine's busy and total ticks.
pub struct Snapshot {
    cpu_ms: BTreeMap<String, f64>,
    machine: (u64, u64),
}

/// The groups measured, and what could not be found.
pub struct Meter {
    pub groups: Vec<Group>,
    pub notes: Vec<String>,
}

impl Meter {
    /// `servers`: (name, port) of the infrastructure; `peer_pg_port`: the peer's own
    /// PostgreSQL, if it has one.
    pub fn new(
        processes: &[Process],
        servers: &[(&str, u16)],
        peer: bool,
        peer_pg_port: Option<u16>,
    ) -> Meter {
        let mut groups = Vec::new();
        let mut notes = Vec::new();
        let each = processes.iter().map(|p| (p.service.name(), p.child.id()));
        for (service, pids) in by_service(each) {
            if pids.len() > 1 {
                notes.push(format!(
                    "{service}: {} processes (replicas), their CPU summed",
                    pids.len()
                ));
            }
            groups.push(group(service, false, Members::Pids(pids)));
        }
        let mut serve =
            |name: &str, port: u16, peer: bool, groups: &mut Vec<Group>| {
                match listener(port) {
            Some(pid) => groups.push(group(name, peer, Members::Tree(pid))),
            None => notes.push(format!(
                "{name}: no process of this machine listens on port {port}; its CPU is not counted"
            )),
        }
            };
        for (name, port) in servers {
            serve(name, *port, false, &mut groups);
        }
        if peer {
            groups.push(group(
                "peer uvicorn",
                true,
                Members::Cmdline("uvicorn".into()),
            ));
            if let Some(port) = peer_pg_port {
                serve("peer postgresql", port, true, &mut groups);
            }
        }
        groups.push(group("load generator", false, Members::Me));
        Meter { groups, notes }
    }

    pub fn snapshot(&self) -> Snapshot {
        let stats: HashMap<u32, Stat> = pids()
            .into_iter()
            .filter_map(|pid| Some((pid, read_stat(pid)?)))
            .collect();
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for s in stats.values() {
            children.entry(s.ppid).or_default().push(s.pid);
        }
        let tree = |roots: Vec<u32>| -> HashSet<u32> {
            let mut seen = HashSet::new();
            let mut todo = roots;
            while let Some(pid) = todo.pop() {
                if seen.insert(pid) {
                    todo.extend(children.get(&pid).into_iter().flatten());
                }
            }
            seen
        };
        let ticks = |pids: HashSet<u32>| -> u64 {
            pids.iter()
                .filter_map(|p| stats.get(p))
                .map(|s| s.own + s.reaped)
                .sum()
        };
        let mut cpu_ms = BTreeMap::new();
        for g in &self.groups {
            let t = match &g.members {
                Members::Pids(pids) => pids
                    .iter()
                    .filter_map(|pid| stats.get(pid))
                    .map(|s| s.own + s.reaped)
                    .sum(),
                Members::Tree(pid) => ticks(tree(vec![*pid])),
                Members::Cmdline(needle) => ticks(tree(
                    stats
                        .keys()
                        .copied()
                        .filter(|pid| cmdline(*pid).contains(needle.as_str()))
                        .collect(),
                )),
                Members::Me => read_stat(std::process::id()).map_or(0, |s| s.own),
            };
            cpu_ms.insert(g.name.clone(), t as f64 * 1000.0 / TICKS_PER_SECOND);
        }
        Snapshot {
            cpu_ms,
            machine: machine_ticks(),
        }
    }
}

/// Each service's process ids (from `(service, pid)` of every process), in the order
/// the services first appear.
fn by_service<'a>(processes: impl Iterator<Item = (&'a str, u32)>) -> Vec<(&'a str, Vec<u32>)> {
    let mut out: Vec<(&str, Vec<u32>)> = Vec::new();
    for (name, pid) in processes {
        match out.iter_mut().find(|(service, _)| *service == name) {
            Some((_, pids)) => pids.push(pid),
            None => out.push((name, vec![pid])),
        }
    }
    out
}

fn group(name: &str, peer: bool, members: Members) -> Group {
    Group {
        name: name.to_owned(),
        peer,
        members,
    }
}

/// CPU milliseconds each group spent from `before` to `after`.
pub fn spent(before: &Snapshot, after: &Snapshot) -> BTreeMap<String, f64> {
    after
        .cpu_ms
        .iter()
        .map(|(name, ms)| {
            let was = before.cpu_ms.get(name).copied().unwrap_or(0.0);
            (name.clone(), (ms - was).max(0.0))
        })
        .collect()
}

/// How busy the machine's CPUs were from `before` to `after` (0 to 1).
pub fn machine_busy(before: &Snapshot, after: &Snapshot) -> f64 {
    let busy = after.machine.0.saturating_sub(before.machine.0);
    let total = after.machine.1.saturating_sub(before.machine.1);
    if total == 0 {
        0.0
    } else {
        busy as f64 / total as f64
    }
}

/// How busy the machine's CPUs were from `before` to `after` with processes outside
/// every group (0 to 1): a compiler, another test... what the figures should not have
/// shared the machine with.
pub fn others_busy(before: &Snapshot, after: &Snapshot) -> f64 {
    let total = after.machine.1.saturating_sub(before.machine.1);
    if total == 0 {
        return 0.0;
    }
    let busy_ms =
        after.machine.0.saturating_sub(before.machine.0) as f64 * 1000.0 / TICKS_PER_SECOND;
    let groups_ms: f64 = spent(before, after).values().sum();
    ((busy_ms - groups_ms) / (total as f64 * 1000.0 / TICKS_PER_SECOND)).max(0.0)
}

/// (busy, total) ticks of all CPUs, from the first line of `/proc/stat`.
fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let t: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let at = |i: usize| t.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    (busy, busy + at(3) + at(4))
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Resident and peak resident memory of a process, in MiB (`VmRSS`, `VmHWM`).
pub fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
}

/// The process listening on TCP `port` of this machine: of those holding the
/// listening socket, the one whose parent does not (PostgreSQL's postmaster).
pub fn listener(port: u16) -> Option<u32> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && f.get(3) == Some(&"0A") {
                inodes.extend(f.get(9).map(|i| format!("socket:[{i}]")));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let holders: Vec<u32> = pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|link| inodes.contains(link.to_string_lossy().as_ref()))
                })
            })
        })
        .collect();
    holders
        .iter()
        .copied()
        .find(|pid| read_stat(*pid).is_none_or(|s| !holders.contains(&s.ppid)))
}

/// The port of a URL such as `postgres://user@127.0.0.1:55432/db` or `127.0.0.1:29092`.
pub fn url_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_of_the_infrastructure_urls() {
        assert_eq!(
            url_port("postgres://postgres@127.0.0.1:55432/postgres"),
            Some(55432)
        );
        assert_eq!(
            url_port("amqp://guest:guest@127.0.0.1:55672/%2f"),
            Some(55672)
        );
        assert_eq!(url_port("redis://127.0.0.1:56379"), Some(56379));
        assert_eq!(url_port("127.0.0.1:29092"), Some(29092));
        assert_eq!(url_port("redis://localhost"), None);
    }

    #[test]
    fn a_service_is_the_sum_of_its_replicas() {
        let processes = [
            ("product", 10),
            ("order", 11),
            ("inventory", 12),
            ("order", 21),
            ("inventory", 22),
            ("order", 31),
        ];
        assert_eq!(
            by_service(processes.into_iter()),
            [
                ("product", vec![10]),
                ("order", vec![11, 21, 31]),
                ("inventory", vec![12, 22]),
            ]
        );
    }

    #[test]
    fn this_process_is_measured() {
        let me = read_stat(std::process::id()).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(memory_mib(std::process::id()).unwrap().0 > 0.0);
    }
}
