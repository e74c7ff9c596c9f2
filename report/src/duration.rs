//! Go-style durations, as Flux and the Flux Operator write them.

use std::time::Duration;

/// Parse `300ms`, `30s`, `5m`, `1h30m`, `1.5h`, `2h45m10s`.
/// Units: ns, us (or µs), ms, s, m, h. A bare `0` is zero.
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let bad = || format!("invalid duration {input:?} (expected e.g. 30s, 5m, 1h30m)");
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += value * seconds_per_unit;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Format a run duration as the Flux Operator does in "Reporting finished in
/// <dur>": under a second rounded to milliseconds (`272ms`), otherwise rounded
/// to seconds (`3s`, `1m5s`).
pub fn format_run(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        let ms = (d.as_secs_f64() * 1000.0).round() as u64;
        if ms == 1000 {
            return "1s".into();
        }
        return format!("{ms}ms");
    }
    format_go(Duration::from_secs(d.as_secs_f64().round() as u64))
}

/// Format a whole-second duration as Go's `time.Duration.String()`:
/// `45s`, `5m0s`, `1h30m0s`.
pub fn format_go(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in ["", "5", "m", "5 m", "5x", "-5m", "1h30", "abc"] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn run_duration_uses_ms_below_one_second_and_seconds_above() {
        assert_eq!(format_run(Duration::from_micros(272_400)), "272ms");
        assert_eq!(format_run(Duration::from_millis(999)), "999ms");
        assert_eq!(format_run(Duration::from_millis(2600)), "3s");
        assert_eq!(format_run(Duration::from_secs(65)), "1m5s");
    }
}
