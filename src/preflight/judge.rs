//! The pure half of `berth check`: the text and numbers the probes gathered in, verdicts and
//! fixes out. Everything here is tested on made-up inputs.

use crate::runtime::cgroupfs::Hierarchy;

use super::{Check, PreflightError, Verdict};

/// Whether /proc/filesystems lists `name` (lines are `nodev\tNAME` or `\tNAME`).
pub fn lists_filesystem(filesystems: &str, name: &str) -> bool {
    filesystems
        .lines()
        .any(|line| line.split_whitespace().last() == Some(name))
}

/// Controllers berth's cgroup settings write to. v1 needs `devices` too (v2 does device
/// rules with eBPF, without a controller file).
const NEEDED_V1: &[&str] = &["cpu", "devices", "memory", "pids"];
const NEEDED_V2: &[&str] = &["cpu", "memory", "pids"];

/// The cgroup layout from the mounted hierarchies; for a unified-only host also the root's
/// `cgroup.controllers` and `cgroup.subtree_control`.
pub fn cgroups(
    hierarchies: &[Hierarchy],
    unified_controllers: Option<&str>,
    unified_subtree: Option<&str>,
) -> Check {
    const NAME: &str = "cgroups";
    let v1: Vec<&str> = hierarchies
        .iter()
        .filter(|h| !h.unified)
        .flat_map(|h| h.controllers.iter().map(String::as_str))
        .collect();
    let has_unified = hierarchies.iter().any(|h| h.unified);
    if !v1.is_empty() {
        let layout = if has_unified { "v1 (hybrid)" } else { "v1" };
        let missing: Vec<&str> = NEEDED_V1
            .iter()
            .copied()
            .filter(|c| !v1.contains(c))
            .collect();
        if missing.is_empty() {
            return Check::ok(
                NAME,
                format!("{layout}; controllers {}", NEEDED_V1.join(", ")),
            );
        }
        return Check::fail(
            NAME,
            format!(
                "{layout}; no hierarchy has the {} controller{}",
                missing.join(", "),
                plural(missing.len())
            ),
            format!(
                "mount them (mount -t cgroup -o {0} cgroup /sys/fs/cgroup/{0}), or boot without \
                 cgroup_disable= and with a kernel built with them (CONFIG_MEMCG, \
                 CONFIG_CGROUP_PIDS, CONFIG_CGROUP_SCHED, CONFIG_CGROUP_DEVICE)",
                missing[0]
            ),
        );
    }
    if !has_unified {
        return Check::fail(
            NAME,
            "no cgroup filesystem is mounted",
            "mount cgroup2 (mount -t cgroup2 cgroup2 /sys/fs/cgroup), as systemd does at boot",
        );
    }
    let available: Vec<&str> = unified_controllers
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let missing: Vec<&str> = NEEDED_V2
        .iter()
        .copied()
        .filter(|c| !available.contains(c))
        .collect();
    if !missing.is_empty() {
        return Check::fail(
            NAME,
            format!(
                "v2 (unified); the {} controller{} not available",
                missing.join(", "),
                if missing.len() == 1 { " is" } else { "s are" }
            ),
            "a controller a v1 hierarchy holds is not available to v2: boot with \
             systemd.unified_cgroup_hierarchy=1 (or mount the v1 hierarchies berth needs); \
             otherwise boot without cgroup_disable= and with a kernel built with them \
             (CONFIG_MEMCG, CONFIG_CGROUP_PIDS, CONFIG_CGROUP_SCHED); inside a container, \
             have its manager delegate them",
        );
    }
    let enabled: Vec<&str> = unified_subtree
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let undelegated: Vec<&str> = NEEDED_V2
        .iter()
        .copied()
        .filter(|c| !enabled.contains(c))
        .collect();
    if undelegated.is_empty() {
        return Check::ok(
            NAME,
            format!("v2 (unified); {} delegated", NEEDED_V2.join(", ")),
        );
    }
    let plus: Vec<String> = undelegated.iter().map(|c| format!("+{c}")).collect();
    Check::warn(
        NAME,
        format!(
            "v2 (unified); {} not in the root's cgroup.subtree_control",
            undelegated.join(", ")
        ),
        format!(
            "echo '{}' > /sys/fs/cgroup/cgroup.subtree_control (refused with EBUSY while the \
             root cgroup holds processes, as inside a container: move them to a child cgroup)",
            plus.join(" ")
        ),
    )
}

/// A boolean /proc/sys value ("0" or "1").
pub fn sysctl_flag(what: &'static str, text: &str) -> Result<bool, PreflightError> {
    match text.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(PreflightError::Parse {
            what,
            text: other.to_string(),
        }),
    }
}

/// `net.ipv4.ip_forward`: berth turns it on when it creates a bridge network, which it can
/// only do while /proc/sys is writable; a sysctl reload can turn it off again.
pub fn ip_forward(on: bool, writable: bool) -> Check {
    const NAME: &str = "ip-forward";
    const PERSIST: &str = "echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-berth.conf && \
                           sysctl --system";
    match (on, writable) {
        (true, _) => Check::ok(NAME, "net.ipv4.ip_forward = 1"),
        (false, true) => Check::warn(
            NAME,
            "net.ipv4.ip_forward = 0 (berth sets it to 1 with its first bridge network; a \
             sysctl reload would turn it off again)",
            PERSIST,
        ),
        (false, false) => Check::fail(
            NAME,
            "net.ipv4.ip_forward = 0 and /proc/sys is read-only here: bridge networks cannot \
             reach beyond the host",
            PERSIST,
        ),
    }
}

/// The name of a filesystem from its `statfs` magic, for the ones that matter here.
pub fn filesystem_name(magic: u64) -> Option<&'static str> {
    Some(match magic {
        0xEF53 => "ext2/3/4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x2FC1_2FC1 => "zfs",
        0x0102_1994 => "tmpfs",
        0x8584_58F6 => "ramfs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        0xFF53_4D42 => "cifs",
        0xFE53_4D42 => "smb2",
        0x6573_5546 => "fuse",
        0xF15F => "ecryptfs",
        0x7371_7368 => "squashfs",
        _ => return None,
    })
}

/// What is wrong with a filesystem as the home of containers' overlay upper dirs, if
/// anything, and the fix.
pub fn filesystem_problem(magic: u64) -> Option<(Verdict, &'static str)> {
    const ELSEWHERE: &str = "put the state root on a local ext4, xfs (ftype=1) or btrfs \
                             filesystem: pass --root DIR, or mount one at the state root";
    match filesystem_name(magic)? {
        "overlayfs" => Some((
            Verdict::Fail,
            "an overlayfs cannot hold an overlay upper dir (berth inside a container?): \
             bind-mount a directory of a real filesystem (ext4, xfs, btrfs) at the state root, \
             e.g. a volume mounted at /var/lib/berth",
        )),
        "nfs" | "cifs" | "smb2" | "fuse" | "ecryptfs" | "squashfs" => {
            Some((Verdict::Fail, ELSEWHERE))
        }
        "tmpfs" | "ramfs" => Some((
            Verdict::Warn,
            "everything under the state root (images, containers, volumes) is lost at \
             reboot: put it on a disk filesystem unless that is meant",
        )),
        _ => None,
    }
}

/// Below this the state root cannot take an image or a container's writes.
pub const FREE_FAIL: u64 = 256 << 20;
/// Below this it soon will not.
pub const FREE_WARN: u64 = 2 << 30;

/// How one overlay trial mount went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Mounted,
    /// The step that failed (`mkdir`, `tmpfs`, `mount`) and its errno.
    Failed {
        step: String,
        errno: i32,
    },
    NotTried(String),
}

impl Attempt {
    fn describe(&self) -> String {
        match self {
            Attempt::Mounted => "a trial overlay mounted".into(),
            Attempt::Failed { step, errno } => format!(
                "the trial overlay failed at {step}: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
            Attempt::NotTried(why) => format!("no trial overlay ({why})"),
        }
    }
}

/// The child's answer: `kernel=ATTEMPT root=ATTEMPT`, each `ok` or `STEP:ERRNO`.
pub fn parse_trial(answer: &str) -> Result<(Attempt, Attempt), PreflightError> {
    let bad = || PreflightError::Parse {
        what: "the overlay trial's answer",
        text: answer.to_string(),
    };
    let attempt = |word: Option<&str>, key: &str| -> Result<Attempt, PreflightError> {
        let value = word
            .and_then(|w| w.strip_prefix(key))
            .and_then(|w| w.strip_prefix('='))
            .ok_or_else(bad)?;
        if value == "ok" {
            return Ok(Attempt::Mounted);
        }
        let (step, errno) = value.split_once(':').ok_or_else(bad)?;
        if !["mkdir", "tmpfs", "mount", "namespace"].contains(&step) {
            return Err(bad());
        }
        Ok(Attempt::Failed {
            step: step.to_string(),
            errno: errno.parse().map_err(|_| bad())?,
        })
    };
    let mut words = answer.split_whitespace();
    let kernel = attempt(words.next(), "kernel")?;
    let root = attempt(words.next(), "root")?;
    if words.next().is_some() {
        return Err(bad());
    }
    Ok((kernel, root))
}

/// overlayfs: listed by the kernel, and a trial mount on a tmpfs in a private namespace.
pub fn overlayfs(listed: bool, kernel: &Attempt) -> Check {
    const NAME: &str = "overlayfs";
    const LOAD: &str = "modprobe overlay (kernel option CONFIG_OVERLAY_FS; the module ships \
                        in Debian's linux-image packages); to load it at boot: echo overlay \
                        > /etc/modules-load.d/overlay.conf";
    let listed_text = if listed {
        "listed in /proc/filesystems"
    } else {
        "not in /proc/filesystems"
    };
    match kernel {
        Attempt::Mounted => Check::ok(NAME, format!("{listed_text}; {}", kernel.describe())),
        Attempt::Failed { .. } if listed => Check::fail(
            NAME,
            format!("{listed_text}; {}", kernel.describe()),
            "the kernel refused an overlay of tmpfs directories: see `dmesg | grep overlay`; \
             under a container manager, allow mounts (CAP_SYS_ADMIN, no seccomp or AppArmor \
             mount denial)",
        ),
        Attempt::NotTried(_) if listed => Check::warn(
            NAME,
            format!("{listed_text}; {}", kernel.describe()),
            "run `berth check` as root to try a mount",
        ),
        _ => Check::fail(NAME, format!("{listed_text}; {}", kernel.describe()), LOAD),
    }
}

/// What the probes found about the state root's filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootFacts {
    /// The directory examined: the state root, or its nearest existing ancestor.
    pub examined: std::path::PathBuf,
    pub exists: bool,
    pub magic: u64,
    pub free_bytes: u64,
    /// Whether directory entries carry their type (d_type), which overlayfs needs; `None`
    /// when it could not be tried.
    pub d_type: Option<bool>,
    pub trial: Attempt,
}

pub fn state_root(facts: &RootFacts) -> Check {
    const NAME: &str = "state-root";
    let fs = filesystem_name(facts.magic).map_or_else(
        || format!("filesystem magic {:#x}", facts.magic),
        str::to_string,
    );
    let mut found = vec![format!(
        "{}{}: {fs}, {} free",
        facts.examined.display(),
        if facts.exists {
            ""
        } else {
            " (the state root does not exist yet)"
        },
        crate::units::human_size(facts.free_bytes)
    )];
    let mut verdict = Verdict::Ok;
    let mut fixes: Vec<String> = Vec::new();
    let mut note = |v: Verdict, fix: &str, fixes: &mut Vec<String>| {
        verdict = worse(verdict, v);
        if !fixes.iter().any(|f| f == fix) {
            fixes.push(fix.to_string());
        }
    };
    let problem = filesystem_problem(facts.magic);
    if let Some((v, fix)) = problem {
        note(v, fix, &mut fixes);
    }
    match facts.d_type {
        Some(true) => found.push("entries carry d_type".into()),
        Some(false) => {
            found.push("directory entries carry no type (d_type)".into());
            note(
                Verdict::Fail,
                "overlayfs needs d_type: on xfs recreate the filesystem with mkfs.xfs -n \
                 ftype=1, or put the state root on ext4 or btrfs",
                &mut fixes,
            );
        }
        None => found.push("d_type not checked".into()),
    }
    found.push(match &facts.trial {
        Attempt::Mounted => "an overlay with its upper dir here mounted".into(),
        other => {
            other
                .describe()
                .replacen("the trial overlay", "an overlay with its upper dir here", 1)
        }
    });
    match &facts.trial {
        Attempt::Mounted => {}
        Attempt::Failed { step, .. } if step == "mkdir" => note(
            Verdict::Fail,
            "berth writes here: make the directory writable by root (not a read-only mount)",
            &mut fixes,
        ),
        // The filesystem's own fix says where to go instead.
        Attempt::Failed { .. } if matches!(problem, Some((Verdict::Fail, _))) => {}
        Attempt::Failed { .. } => note(
            Verdict::Fail,
            "put the state root on a local ext4, xfs (ftype=1) or btrfs filesystem: pass \
             --root DIR, or mount one at the state root",
            &mut fixes,
        ),
        Attempt::NotTried(_) => note(
            Verdict::Warn,
            "run `berth check` as root to try a mount",
            &mut fixes,
        ),
    }
    if facts.free_bytes < FREE_FAIL {
        note(
            Verdict::Fail,
            "free space on this filesystem: `berth prune images`, or grow it",
            &mut fixes,
        );
    } else if facts.free_bytes < FREE_WARN {
        note(
            Verdict::Warn,
            "free space on this filesystem: `berth prune images`, or grow it",
            &mut fixes,
        );
    }
    Check {
        name: NAME,
        verdict,
        found: found.join("; "),
        fix: (!fixes.is_empty()).then(|| fixes.join("; ")),
    }
}

/// libseccomp, which berth links to compile containers' filters.
pub fn libseccomp(version: Option<(u32, u32, u32)>) -> Check {
    const NAME: &str = "libseccomp";
    const INSTALL: &str = "apt-get install libseccomp2 (Debian 12 ships 2.5.4)";
    match version {
        None => Check::fail(NAME, "the linked libseccomp gives no version", INSTALL),
        Some((major, minor, micro)) if (major, minor) >= (2, 5) => {
            Check::ok(NAME, format!("{major}.{minor}.{micro}"))
        }
        Some((major, minor, micro)) => Check::warn(
            NAME,
            format!(
                "{major}.{minor}.{micro}: older than 2.5, it does not know newer syscalls, \
                 which containers' filters then leave out"
            ),
            INSTALL,
        ),
    }
}

/// Base chains of other tables that drop forwarded packets by policy: each is
/// `FAMILY TABLE CHAIN`. An accept in berth's own forward chain does not get a packet past
/// another table's drop.
pub fn forward_drops(nft_json: &str) -> Result<Vec<String>, PreflightError> {
    let bad = || PreflightError::Parse {
        what: "`nft -j list chains`",
        text: nft_json.chars().take(200).collect(),
    };
    let value: serde_json::Value = serde_json::from_str(nft_json).map_err(|_| bad())?;
    let items = value
        .get("nftables")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(bad)?;
    let mut out = Vec::new();
    for chain in items.iter().filter_map(|i| i.get("chain")) {
        let text = |key: &str| chain.get(key).and_then(serde_json::Value::as_str);
        if text("hook") != Some("forward") || text("policy") != Some("drop") {
            continue;
        }
        let table = text("table").unwrap_or_default();
        if table.starts_with("berth") {
            continue;
        }
        out.push(format!(
            "{} {table} {}",
            text("family").unwrap_or_default(),
            text("name").unwrap_or_default()
        ));
    }
    Ok(out)
}

pub fn forward_policy(drops: &[String]) -> Check {
    const NAME: &str = "forward-policy";
    let Some(first) = drops.first() else {
        return Check::ok(NAME, "no other table drops forwarded packets by policy");
    };
    Check::warn(
        NAME,
        format!(
            "forward chain{} with policy drop: {} (traffic of berth's bridges to other hosts \
             and to published ports is dropped unless {} accept{} it)",
            plural(drops.len()),
            drops.join(", "),
            if drops.len() == 1 { "it" } else { "they" },
            if drops.len() == 1 { "s" } else { "" },
        ),
        format!(
            "nft insert rule {first} iifname \"berth*\" accept; nft insert rule {first} \
             oifname \"berth*\" accept (berth's own forward chain still decides what reaches \
             containers); or the same in your firewall's configuration"
        ),
    )
}

fn worse(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
        (Verdict::Warn, _) | (_, Verdict::Warn) => Verdict::Warn,
        _ => Verdict::Ok,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;
