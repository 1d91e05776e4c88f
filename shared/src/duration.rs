//! Durations written like `500ms`, `2s`, `1m`, `1h` or `1d` in config and on the command line.
//! Values are bounded (`MAX`), so no later `Instant + duration` or timer can overflow; the
//! caller names the key or flag in its error.

use std::time::Duration;

/// The longest duration accepted anywhere: 100 years, far beyond any interval or timeout,
/// and far below what `Instant` arithmetic can hold.
pub const MAX: Duration = Duration::from_secs(100 * 365 * 86_400);

pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` has no unit: write e.g. `500ms`, `2s`, `1m`"))?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "`{s}` must start with a whole number, e.g. `500ms`, `2s`"
        ));
    }
    let too_large = || format!("`{s}` is too large: at most {}", format(MAX));
    // Only digits here, so a parse error means more digits than a u64 holds.
    let n: u64 = num.parse().map_err(|_| too_large())?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "`{s}` has unknown unit `{unit}`: use ms, s, m, h or d"
            ))
        }
    };
    let ms = n.checked_mul(ms_per_unit).ok_or_else(too_large)?;
    let d = Duration::from_millis(ms);
    if d > MAX {
        return Err(too_large());
    }
    Ok(d)
}

/// Formats a duration back into the config syntax (largest exact unit).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms > 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    if ms == 0 {
        return "0s".into();
    }
    format!("{ms}ms")
}

/// serde helper: `#[serde(with = "lvs_shared::duration::serde_dur")]`.
pub mod serde_dur {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse("3d").unwrap(), Duration::from_secs(3 * 86400));
        assert!(parse("10").is_err());
        assert!(parse("s").is_err());
        assert!(parse("5x").is_err());
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_secs(120)), "2m");
    }

    #[test]
    fn huge_values_are_rejected_not_wrapped() {
        for s in [
            "213503982334601d",
            "18446744073709551615s",
            "99999999999999999999999ms",
            "5124095576030432h",
            "36501d",
        ] {
            let e = parse(s).expect_err(s);
            assert!(e.contains("too large"), "{s}: {e}");
        }
        assert_eq!(parse("36500d").unwrap(), MAX);
    }
}
