//! API versions: "1.41" compared as numbers, and dockerd's refusals of those it does not
//! serve (the CLI prints them as they are).

use std::cmp::Ordering;

use super::{MIN_VERSION, VERSION};

/// Compares dotted versions part by part as numbers ("1.9" < "1.41"); a missing part is 0.
pub(super) fn compare(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (a, b) = (parts(a), parts(b));
    for i in 0..a.len().max(b.len()) {
        let order = a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0));
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// Whether `asked` is served; if not, dockerd's message.
pub(super) fn check(asked: &str) -> Result<(), String> {
    if compare(asked, MIN_VERSION) == Ordering::Less {
        return Err(format!(
            "client version {asked} is too old. Minimum supported API version is {MIN_VERSION}, please upgrade your client to a newer version"
        ));
    }
    if compare(asked, VERSION) == Ordering::Greater {
        return Err(format!(
            "client version {asked} is too new. Maximum supported API version is {VERSION}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_numbers() {
        assert_eq!(compare("1.9", "1.41"), Ordering::Less);
        assert_eq!(compare("1.41", "1.41.0"), Ordering::Equal);
        assert_eq!(compare("2.0", "1.41"), Ordering::Greater);
    }

    #[test]
    fn versions_outside_the_range_are_refused_in_dockerds_words() {
        assert_eq!(check("1.41"), Ok(()));
        assert_eq!(check("1.24"), Ok(()));
        assert_eq!(
            check("1.43").unwrap_err(),
            "client version 1.43 is too new. Maximum supported API version is 1.41"
        );
        assert_eq!(
            check("1.12").unwrap_err(),
            "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
        );
    }
}
