//! The container's user, resolved the way Docker resolves it, from the image's `/etc/passwd`
//! and `/etc/group`.
//!
//! Pure functions over the files' contents: the caller reads them from the root filesystem
//! (confined to it) and passes `""` for a missing file, which behaves like an empty one.
//!
//! Docker's rules (moby/sys/user `GetExecUser` and `GetAdditionalGroups`), kept exactly because
//! images are written against them:
//! - no user, or an empty user part (`":gid"`), means uid 0, looked up in passwd like any uid;
//! - a numeric part is always an id, never a name, and need not exist in the files;
//! - a name must exist; the first matching line wins;
//! - without an explicit group, the primary gid comes from passwd (0 when the uid has no line)
//!   and every group that lists the user's name as a member is added; with an explicit group,
//!   that group is the primary gid and no membership is added (`user:group` means "exactly this
//!   group", a common way to drop privileges);
//! - extra groups (`groups = [...]`) are always added: names must exist, numbers need not.

use std::collections::BTreeSet;

/// The ids a container's process runs with, and its `HOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub uid: u32,
    pub gid: u32,
    /// Sorted, without duplicates, never containing `gid`.
    pub additional_gids: Vec<u32>,
    pub home: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum UserError {
    #[error(
        "the image has no user `{user}` in its /etc/passwd: use a numeric uid (e.g. `user = \"1000\"`), or a user the image defines"
    )]
    NoSuchUser { user: String },
    #[error(
        "the image has no group `{group}` in its /etc/group: use a numeric gid (e.g. `1000`), or a group the image defines"
    )]
    NoSuchGroup { group: String },
    #[error("`{text}` is not a valid id: uids and gids must be whole numbers from 0 to {MAX_ID}")]
    IdOutOfRange { text: String },
    #[error("invalid user `{spec}`: write `user`, `user:group`, `uid` or `uid:gid`")]
    Malformed { spec: String },
}

/// The largest usable id: `u32::MAX` is `(uid_t)-1`, which the kernel reads as "no change".
const MAX_ID: u32 = u32::MAX - 1;
const ROOT: u32 = 0;
const DEFAULT_HOME: &str = "/";

/// Resolves `user` (`None`, `name`, `uid`, `name:group`, `uid:gid`, …) and the extra `groups`
/// against the image's passwd and group files.
pub(crate) fn resolve(
    user: Option<&str>,
    groups: &[String],
    passwd: &str,
    group: &str,
) -> Result<Resolved, UserError> {
    let spec = UserSpec::parse(user.unwrap_or(""))?;
    let passwd = parse_passwd(passwd);
    let group_file = parse_group(group);

    let account = find_user(&spec.user, &passwd)?;
    let mut gid = account.gid;
    let mut additional = BTreeSet::new();
    match &spec.group {
        Some(g) => gid = find_group_id(g, &group_file)?,
        None => {
            if let Some(name) = account.name {
                additional.extend(memberships(name, &group_file));
            }
        }
    }
    for extra in groups {
        additional.insert(extra_group_id(extra, &group_file)?);
    }
    additional.remove(&gid);

    Ok(Resolved {
        uid: account.uid,
        gid,
        additional_gids: additional.into_iter().collect(),
        home: account.home.to_owned(),
    })
}

/// One side of a `user:group` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Id {
    Number(u32),
    Name(String),
}

impl Id {
    fn parse(text: &str) -> Result<Id, UserError> {
        if !looks_numeric(text) {
            return Ok(Id::Name(text.to_owned()));
        }
        text.parse::<u32>()
            .ok()
            .filter(|id| *id <= MAX_ID)
            .map(Id::Number)
            .ok_or_else(|| UserError::IdOutOfRange { text: text.into() })
    }
}

/// A signed number counts as numeric so that `-1` is rejected as an id rather than looked up
/// as a user called "-1".
fn looks_numeric(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[derive(Debug, PartialEq, Eq)]
struct UserSpec {
    user: Id,
    group: Option<Id>,
}

impl UserSpec {
    fn parse(spec: &str) -> Result<UserSpec, UserError> {
        let mut parts = spec.split(':');
        let user = parts.next().unwrap_or("");
        let group = parts.next().unwrap_or("");
        if parts.next().is_some() {
            return Err(UserError::Malformed { spec: spec.into() });
        }
        Ok(UserSpec {
            user: if user.is_empty() {
                Id::Number(ROOT)
            } else {
                Id::parse(user)?
            },
            group: if group.is_empty() {
                None
            } else {
                Some(Id::parse(group)?)
            },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

#[derive(Debug, PartialEq, Eq)]
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// The user the process runs as, before any explicit group is applied.
struct Account<'a> {
    uid: u32,
    gid: u32,
    /// None for a uid without a passwd line: there is no name to find memberships by.
    name: Option<&'a str>,
    home: &'a str,
}

fn find_user<'a>(user: &Id, passwd: &[PasswdEntry<'a>]) -> Result<Account<'a>, UserError> {
    let found = passwd.iter().find(|e| match user {
        Id::Number(uid) => e.uid == *uid,
        Id::Name(name) => e.name == name,
    });
    match (found, user) {
        (Some(e), _) => Ok(Account {
            uid: e.uid,
            gid: e.gid,
            name: Some(e.name),
            home: if e.home.is_empty() {
                DEFAULT_HOME
            } else {
                e.home
            },
        }),
        (None, Id::Number(uid)) => Ok(Account {
            uid: *uid,
            gid: ROOT,
            name: None,
            home: DEFAULT_HOME,
        }),
        (None, Id::Name(name)) => Err(UserError::NoSuchUser { user: name.clone() }),
    }
}

fn find_group_id(group: &Id, groups: &[GroupEntry<'_>]) -> Result<u32, UserError> {
    match group {
        Id::Number(gid) => Ok(*gid),
        Id::Name(name) => groups
            .iter()
            .find(|g| g.name == name)
            .map(|g| g.gid)
            .ok_or_else(|| UserError::NoSuchGroup {
                group: name.clone(),
            }),
    }
}

/// Docker matches an extra group by name or by its gid written out, then falls back to the
/// number itself.
fn extra_group_id(extra: &str, groups: &[GroupEntry<'_>]) -> Result<u32, UserError> {
    if let Some(g) = groups.iter().find(|g| g.name == extra) {
        return Ok(g.gid);
    }
    match Id::parse(extra)? {
        Id::Number(gid) => Ok(gid),
        Id::Name(name) => Err(UserError::NoSuchGroup { group: name }),
    }
}

fn memberships<'a>(user: &'a str, groups: &'a [GroupEntry<'a>]) -> impl Iterator<Item = u32> + 'a {
    groups
        .iter()
        .filter(move |g| g.members.contains(&user))
        .map(|g| g.gid)
}

/// Lines that are not real entries are skipped, as libc does: comments, blank lines, too few
/// fields, an empty name, ids that are not numbers in range.
fn records(file: &str, fields: usize) -> impl Iterator<Item = Vec<&str>> {
    file.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(move |line| line.splitn(fields, ':').collect::<Vec<_>>())
        .filter(move |parts| parts.len() == fields && !parts[0].is_empty())
}

fn parse_id(field: &str) -> Option<u32> {
    if !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok().filter(|id| *id <= MAX_ID)
}

/// `name:password:uid:gid:gecos:home:shell`
fn parse_passwd(file: &str) -> Vec<PasswdEntry<'_>> {
    records(file, 7)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f[0],
                uid: parse_id(f[2])?,
                gid: parse_id(f[3])?,
                home: f[5],
            })
        })
        .collect()
}

/// `name:password:gid:member,member,…`
fn parse_group(file: &str) -> Vec<GroupEntry<'_>> {
    records(file, 4)
        .filter_map(|f| {
            Some(GroupEntry {
                name: f[0],
                gid: parse_id(f[2])?,
                members: f[3]
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App User,,,:/home/app:/bin/sh
nohome:x:1001:1001:::/bin/sh
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
";

    const GROUP: &str = "\
root:x:0:
daemon:x:1:
wheel:x:10:root
audio:x:29:app,daemon
video:x:44:daemon, app
www-data:x:33:
app:x:1000:app
staff:x:50:
nohome:x:1001:
";

    fn ok(user: Option<&str>, groups: &[&str], passwd: &str, group: &str) -> Resolved {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        match resolve(user, &groups, passwd, group) {
            Ok(r) => r,
            Err(e) => panic!("{user:?} {groups:?}: {e}"),
        }
    }

    fn err(user: Option<&str>, groups: &[&str], passwd: &str, group: &str) -> UserError {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        match resolve(user, &groups, passwd, group) {
            Ok(r) => panic!("{user:?} {groups:?}: expected an error, got {r:?}"),
            Err(e) => e,
        }
    }

    fn r(uid: u32, gid: u32, additional: &[u32], home: &str) -> Resolved {
        Resolved {
            uid,
            gid,
            additional_gids: additional.to_vec(),
            home: home.into(),
        }
    }

    #[test]
    fn spec_forms() {
        let cases: &[(Option<&str>, Resolved)] = &[
            (None, r(0, 0, &[10], "/root")),
            (Some(""), r(0, 0, &[10], "/root")),
            (Some("root"), r(0, 0, &[10], "/root")),
            (Some("0"), r(0, 0, &[10], "/root")),
            (Some("app"), r(1000, 1000, &[29, 44], "/home/app")),
            (Some("1000"), r(1000, 1000, &[29, 44], "/home/app")),
            (Some("daemon"), r(1, 1, &[29, 44], "/usr/sbin")),
            (Some("www-data"), r(33, 33, &[], "/var/www")),
            // A uid with no line: gid 0, home "/", no memberships (there is no name to match).
            (Some("4242"), r(4242, 0, &[], "/")),
            (Some("4242:4243"), r(4242, 4243, &[], "/")),
            (Some("4242:staff"), r(4242, 50, &[], "/")),
            // An explicit group replaces the primary gid and drops memberships, as Docker does.
            (Some("app:staff"), r(1000, 50, &[], "/home/app")),
            (Some("app:50"), r(1000, 50, &[], "/home/app")),
            (Some("1000:staff"), r(1000, 50, &[], "/home/app")),
            (Some("1000:1000"), r(1000, 1000, &[], "/home/app")),
            (Some("app:7777"), r(1000, 7777, &[], "/home/app")),
            (Some(":staff"), r(0, 50, &[], "/root")),
            (Some(":50"), r(0, 50, &[], "/root")),
            (Some("app:"), r(1000, 1000, &[29, 44], "/home/app")),
            (Some("nohome"), r(1001, 1001, &[], "/")),
            (Some("4294967294"), r(4294967294, 0, &[], "/")),
            (Some("+7"), r(7, 0, &[], "/")),
            (Some("007"), r(7, 0, &[], "/")),
        ];
        for (spec, want) in cases {
            assert_eq!(&ok(*spec, &[], PASSWD, GROUP), want, "user {spec:?}");
        }
    }

    #[test]
    fn spec_errors() {
        let no_user = |u: &str| UserError::NoSuchUser { user: u.into() };
        let no_group = |g: &str| UserError::NoSuchGroup { group: g.into() };
        let range = |t: &str| UserError::IdOutOfRange { text: t.into() };
        let cases: &[(&str, UserError)] = &[
            ("nobody", no_user("nobody")),
            ("nobody:staff", no_user("nobody")),
            ("app:nogroup", no_group("nogroup")),
            ("1000:nogroup", no_group("nogroup")),
            ("-1", range("-1")),
            ("app:-1", range("-1")),
            ("4294967295", range("4294967295")),
            ("4294967296", range("4294967296")),
            ("99999999999999999999999", range("99999999999999999999999")),
            ("1:4294967296", range("4294967296")),
            (
                "a:b:c",
                UserError::Malformed {
                    spec: "a:b:c".into(),
                },
            ),
            ("1::", UserError::Malformed { spec: "1::".into() }),
            // Names are case-sensitive, like libc.
            ("App", no_user("App")),
        ];
        for (spec, want) in cases {
            assert_eq!(&err(Some(spec), &[], PASSWD, GROUP), want, "user {spec:?}");
        }
    }

    #[test]
    fn extra_groups() {
        let cases: &[(&str, &[&str], Resolved)] = &[
            ("app", &["staff"], r(1000, 1000, &[29, 44, 50], "/home/app")),
            ("app", &["50"], r(1000, 1000, &[29, 44, 50], "/home/app")),
            (
                "app",
                &["9999"],
                r(1000, 1000, &[29, 44, 9999], "/home/app"),
            ),
            // Duplicates (of each other, of memberships, of the primary gid) collapse.
            (
                "app",
                &["audio", "29", "staff", "50", "app", "1000"],
                r(1000, 1000, &[29, 44, 50], "/home/app"),
            ),
            // Extra groups stay even with an explicit group; the primary gid is still removed.
            (
                "app:staff",
                &["audio", "staff"],
                r(1000, 50, &[29], "/home/app"),
            ),
            ("4242", &["wheel", "3"], r(4242, 0, &[3, 10], "/")),
            ("root", &["0", "root"], r(0, 0, &[10], "/root")),
        ];
        for (spec, groups, want) in cases {
            assert_eq!(
                &ok(Some(spec), groups, PASSWD, GROUP),
                want,
                "{spec} {groups:?}"
            );
        }
    }

    #[test]
    fn extra_group_errors() {
        assert_eq!(
            err(Some("app"), &["nogroup"], PASSWD, GROUP),
            UserError::NoSuchGroup {
                group: "nogroup".into()
            }
        );
        assert_eq!(
            err(Some("app"), &["-5"], PASSWD, GROUP),
            UserError::IdOutOfRange { text: "-5".into() }
        );
        assert_eq!(
            err(None, &["4294967295"], PASSWD, GROUP),
            UserError::IdOutOfRange {
                text: "4294967295".into()
            }
        );
    }

    #[test]
    fn membership_by_name_only() {
        let group = "g1:x:100:app\ng2:x:101:apple,xapp\ng3:x:102:APP\ng4:x:103:1000\n";
        assert_eq!(ok(Some("app"), &[], PASSWD, group).additional_gids, [100]);
        // A membership in the primary group itself is not repeated as an additional gid.
        let group = "app:x:1000:app\nother:x:5:app\n";
        assert_eq!(ok(Some("app"), &[], PASSWD, group).additional_gids, [5]);
    }

    #[test]
    fn first_matching_line_wins() {
        let passwd = "dup:x:10:10::/first:/bin/sh\ndup:x:11:11::/second:/bin/sh\n\
                      other:x:10:12::/third:/bin/sh\n";
        assert_eq!(ok(Some("dup"), &[], passwd, ""), r(10, 10, &[], "/first"));
        assert_eq!(ok(Some("10"), &[], passwd, ""), r(10, 10, &[], "/first"));
        let group = "g:x:20:\ng:x:21:\n";
        assert_eq!(ok(Some("0:g"), &[], "", group).gid, 20);
        assert_eq!(ok(Some("0"), &["g"], "", group).additional_gids, [20]);
    }

    #[test]
    fn missing_files_are_empty() {
        assert_eq!(ok(None, &[], "", ""), r(0, 0, &[], "/"));
        assert_eq!(ok(Some("0:0"), &[], "", ""), r(0, 0, &[], "/"));
        assert_eq!(ok(Some("1000"), &["5"], "", ""), r(1000, 0, &[5], "/"));
        assert_eq!(
            ok(Some("1000:1000"), &[], "", GROUP),
            r(1000, 1000, &[], "/")
        );
        assert_eq!(
            err(Some("root"), &[], "", GROUP),
            UserError::NoSuchUser {
                user: "root".into()
            }
        );
        assert_eq!(
            err(Some("0:root"), &[], PASSWD, ""),
            UserError::NoSuchGroup {
                group: "root".into()
            }
        );
        assert_eq!(
            err(None, &["wheel"], PASSWD, ""),
            UserError::NoSuchGroup {
                group: "wheel".into()
            }
        );
    }

    #[test]
    fn malformed_passwd_lines_are_skipped() {
        let passwd = "\
# comment:x:5:5::/c:/bin/sh

   
short:x:6:6
baduid:x:abc:7::/b:/bin/sh
negative:x:-1:7::/b:/bin/sh
huge:x:4294967296:7::/b:/bin/sh
badgid:x:8:eight::/b:/bin/sh
:x:9:9::/empty-name:/bin/sh
  spaced:x:12:12::/spaced:/bin/sh  
colons:x:13:13::/colons:/bin/sh:extra:fields
crlf:x:14:14::/crlf:/bin/sh\r
good:x:11:11::/good:/bin/sh";
        for bad in ["short", "baduid", "negative", "huge", "badgid", "# comment"] {
            assert_eq!(
                err(Some(bad), &[], passwd, ""),
                UserError::NoSuchUser { user: bad.into() },
                "{bad}"
            );
        }
        assert_eq!(ok(Some("9"), &[], passwd, ""), r(9, 0, &[], "/"));
        assert_eq!(ok(Some("5"), &[], passwd, ""), r(5, 0, &[], "/"));
        assert_eq!(ok(Some("good"), &[], passwd, ""), r(11, 11, &[], "/good"));
        assert_eq!(
            ok(Some("spaced"), &[], passwd, ""),
            r(12, 12, &[], "/spaced")
        );
        assert_eq!(ok(Some("colons"), &[], passwd, "").home, "/colons");
        assert_eq!(ok(Some("crlf"), &[], passwd, "").home, "/crlf");
    }

    #[test]
    fn malformed_group_lines_are_skipped() {
        let group = "\
#wheel:x:10:app
short:x:20
badgid:x:abc:app
negative:x:-3:app
:x:21:app

good:x:22:app,,
spaced:x:23: app , other \r
";
        assert_eq!(
            ok(Some("app"), &[], PASSWD, group).additional_gids,
            [22, 23]
        );
        for bad in ["short", "badgid", "negative", "#wheel"] {
            assert_eq!(
                err(Some("0"), &[bad], PASSWD, group),
                UserError::NoSuchGroup { group: bad.into() },
                "{bad}"
            );
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let msg = err(Some("postgres"), &[], PASSWD, GROUP).to_string();
        assert!(
            msg.contains("`postgres`") && msg.contains("no user"),
            "{msg}"
        );
        assert!(msg.contains("numeric uid"), "{msg}");
        let msg = err(Some("-1"), &[], PASSWD, GROUP).to_string();
        assert!(msg.contains("4294967294"), "{msg}");
    }
}
