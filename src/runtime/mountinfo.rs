//! /proc/PID/mountinfo, read once for everyone who needs it: the cgroup hierarchies
//! (`cgroupfs`) and a container's mount tree (`confine`).

/// One line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTS".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountLine {
    pub id: u64,
    pub parent: u64,
    /// Unescaped.
    pub mount_point: String,
    /// This mount's own options (`ro`, `nosymfollow`…), not its superblock's.
    pub options: Vec<String>,
    pub fstype: String,
    pub super_options: String,
}

impl MountLine {
    pub(crate) fn has_option(&self, option: &str) -> bool {
        self.options.iter().any(|o| o == option)
    }
}

/// The well-formed lines of a mountinfo text.
pub(crate) fn parse(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mut fields = before.split(' ');
            let id = fields.next()?.parse().ok()?;
            let parent = fields.next()?.parse().ok()?;
            let mount_point = unescape(fields.nth(2)?);
            let options = fields.next()?.split(',').map(String::from).collect();
            let mut tail = after.split(' ');
            let fstype = tail.next()?.to_string();
            let super_options = tail.nth(1).unwrap_or_default().to_string();
            Some(MountLine {
                id,
                parent,
                mount_point,
                options,
                fstype,
                super_options,
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&text[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_with_their_own_options_and_escapes() {
        let lines = parse(
            "27 25 0:25 / /sys/fs/cgroup/memory ro,nosuid shared:6 - cgroup cgroup rw,memory\n\
             30 1 8:1 / /with\\040space rw - ext4 /dev/sda1 rw\ngarbage\n1 2",
        );
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            MountLine {
                id: 27,
                parent: 25,
                mount_point: "/sys/fs/cgroup/memory".into(),
                options: vec!["ro".into(), "nosuid".into()],
                fstype: "cgroup".into(),
                super_options: "rw,memory".into(),
            }
        );
        assert!(lines[0].has_option("ro") && !lines[0].has_option("rw"));
        assert_eq!(lines[1].mount_point, "/with space");
    }
}
