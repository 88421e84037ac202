//! Docker's names for berth's objects, and finding an object by any of them.
//!
//! A container's Docker id is the sha256 of its berth id, in hex: 64 characters as Docker's,
//! so the CLI's 12-character short form stays distinct for the containers of one entry
//! (`frontend-1a2b3c4d` and `frontend-5e6f7a8b` would both shorten to `frontend-1a2`).
//! Lookups take, as dockerd does, a full id, a name, or a unique id prefix — and berth's own
//! id too. The newest container of an entry is named `/NAME`; its older ones (exited, or a
//! predecessor still draining during an update) are named by their berth id, so names stay
//! unique as Docker's are.

/// The Docker id of a berth container, network or volume name.
pub(super) fn docker_id(berth: &str) -> String {
    crate::sha256::hex_digest(berth.as_bytes())
}

/// One object as lookups see it.
pub(super) struct Known<'a> {
    pub docker_id: &'a str,
    pub berth_id: &'a str,
    pub name: &'a str,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    Found(usize),
    Missing,
    Ambiguous,
}

/// dockerd's order: an exact id, an exact name (with or without its `/`), then a unique
/// prefix of an id.
pub(super) fn find(known: &[Known<'_>], asked: &str) -> Lookup {
    let asked = asked.strip_prefix('/').unwrap_or(asked);
    if asked.is_empty() {
        return Lookup::Missing;
    }
    let exact = known
        .iter()
        .position(|k| k.docker_id == asked || k.berth_id == asked)
        .or_else(|| known.iter().position(|k| k.name == asked));
    if let Some(i) = exact {
        return Lookup::Found(i);
    }
    let mut matches = known
        .iter()
        .enumerate()
        .filter(|(_, k)| k.docker_id.starts_with(asked));
    match (matches.next(), matches.next()) {
        (Some((i, _)), None) => Lookup::Found(i),
        (Some(_), Some(_)) => Lookup::Ambiguous,
        (None, _) => Lookup::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_found_by_id_name_prefix_or_berth_id() {
        let a = docker_id("web-0000000a");
        let b = docker_id("web-0000000b");
        assert_eq!(a.len(), 64);
        assert_ne!(a[..12], b[..12]);
        let known = [
            Known {
                docker_id: &a,
                berth_id: "web-0000000a",
                name: "web-0000000a",
            },
            Known {
                docker_id: &b,
                berth_id: "web-0000000b",
                name: "web",
            },
        ];
        assert_eq!(find(&known, &a), Lookup::Found(0));
        assert_eq!(find(&known, &b[..12]), Lookup::Found(1));
        assert_eq!(find(&known, "web"), Lookup::Found(1));
        assert_eq!(find(&known, "/web"), Lookup::Found(1));
        assert_eq!(find(&known, "web-0000000a"), Lookup::Found(0));
        assert_eq!(find(&known, "nope"), Lookup::Missing);
        assert_eq!(find(&known, ""), Lookup::Missing);
        // Every id starts with some hex digit: with two ids, one digit may be shared.
        let shared: String = a
            .chars()
            .zip(b.chars())
            .take_while(|(x, y)| x == y)
            .map(|(x, _)| x)
            .collect();
        if !shared.is_empty() {
            assert_eq!(find(&known, &shared), Lookup::Ambiguous);
        }
    }
}
