//! Byte counts for people to read: `berth stats`, `berth images`, `berth pull` and
//! `berth prune` print sizes the same way.
//!
//! Binary units without a space (`12.3MiB`), as `docker stats` and `podman stats` print them,
//! and as berth's own specs write sizes (`memory = "256MiB"`), so a limit reads back as it was
//! written. `docker images` and `podman images` use decimal units instead (`72.8MB`); berth
//! keeps one notation across its commands rather than mixing the two.

/// Binary units with one decimal, the decimal dropped when it is zero: `512B`, `12.3MiB`,
/// `256MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    // Rounding decides the unit, so 1023.96 KiB reads as 1MiB and not as 1024KiB.
    while unit + 1 < UNITS.len() && (value * 10.0).round() / 10.0 >= 1024.0 {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text}{}", UNITS[unit])
}

/// Whole milliseconds of `d`, saturating: a `u64` of milliseconds outlasts any duration
/// berth handles (584 million years), so the cap is never reached, only never wrong.
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whole microseconds of `d`, saturating as `millis`.
pub fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;
    const PIB: u64 = 1 << 50;
    const EIB: u64 = 1 << 60;

    #[test]
    fn bytes_below_one_kib_are_exact() {
        for (bytes, want) in [(0, "0B"), (1, "1B"), (512, "512B"), (1023, "1023B")] {
            assert_eq!(human_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn whole_units_drop_the_decimal() {
        let cases = [
            (KIB, "1KiB"),
            (MIB, "1MiB"),
            (GIB, "1GiB"),
            (TIB, "1TiB"),
            (PIB, "1PiB"),
            (EIB, "1EiB"),
            (256 * MIB, "256MiB"),
            (1023 * GIB, "1023GiB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(human_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn fractions_keep_one_decimal() {
        let cases = [
            (1536, "1.5KiB"),
            (12_897_484, "12.3MiB"),
            (GIB + GIB / 2, "1.5GiB"),
            (24_684_096 * KIB, "23.5GiB"),
            (10 * TIB + TIB / 10, "10.1TiB"),
            // 1.04 KiB rounds to 1.0: the decimal goes.
            (1065, "1KiB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(human_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn rounding_up_moves_to_the_next_unit() {
        let cases = [
            (MIB - 1, "1MiB"),
            (GIB - 1, "1GiB"),
            (EIB - 1, "1EiB"),
            // 1023.95 KiB rounds to 1024.0 KiB: shown as 1MiB.
            (1_048_525, "1MiB"),
            // 1023.94 KiB does not.
            (1_048_514, "1023.9KiB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(human_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn the_largest_unit_holds_every_u64() {
        assert_eq!(human_size(u64::MAX), "16EiB");
        assert_eq!(human_size(8 * EIB), "8EiB");
    }

    /// Splits `12.3MiB` into 12.3 and the unit's size.
    fn parse(text: &str) -> (f64, u64) {
        let split = text
            .find(|c: char| c.is_ascii_alphabetic())
            .expect("a unit");
        let (number, unit) = text.split_at(split);
        let unit = match unit {
            "B" => 1,
            "KiB" => KIB,
            "MiB" => MIB,
            "GiB" => GIB,
            "TiB" => TIB,
            "PiB" => PIB,
            "EiB" => EIB,
            other => panic!("unexpected unit {other:?} in {text:?}"),
        };
        (number.parse().expect("a number"), unit)
    }

    proptest! {
        #[test]
        fn output_is_within_rounding_of_the_input(bytes in any::<u64>()) {
            let text = human_size(bytes);
            prop_assert!(!text.contains(' ') && !text.ends_with(".0"), "{}", text);
            let (number, unit) = parse(&text);
            prop_assert!(number < 1024.0 || unit == EIB, "{}", text);
            let decimals = text.split_once('.').map_or(0, |(_, rest)| {
                rest.chars().take_while(char::is_ascii_digit).count()
            });
            prop_assert!(decimals <= 1, "{}", text);
            // Half a decimal of the unit, and a little for floating point.
            let error = (number * unit as f64 - bytes as f64).abs();
            prop_assert!(error <= 0.0501 * unit as f64, "{} for {}", text, bytes);
        }
    }

    #[test]
    fn durations_in_whole_units_saturate() {
        use std::time::Duration;
        assert_eq!(millis(Duration::from_micros(1999)), 1);
        assert_eq!(millis(Duration::from_secs(3)), 3000);
        assert_eq!(micros(Duration::from_nanos(2500)), 2);
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert_eq!(micros(Duration::MAX), u64::MAX);
    }
}
