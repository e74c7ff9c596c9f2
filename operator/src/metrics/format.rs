//! The two exposition formats `/metrics` serves, and which one a client
//! gets from its `Accept` header.
//!
//! prometheus-client writes OpenMetrics 1.0.0. Prometheus 2.x asks for it
//! first (`application/openmetrics-text;version=1.0.0,…;q=0.75,
//! text/plain;version=0.0.4;q=0.5,*/*;q=0.1`), and so does 3.x. Anything
//! else (curl's `*/*`, older scrapers' `text/plain`) gets the Prometheus
//! text format 0.0.4, as client_golang's `expfmt.Negotiate` falls back to
//! it. The 0.0.4 body is prometheus-client's text rewritten on the fly by
//! [`Text004`]: OpenMetrics names a counter family without `_total` but its
//! samples with it, and a 0.0.4 parser only types samples whose name is the
//! family's, so the `# HELP`/`# TYPE` lines take the sample name; `info` and
//! `unknown` become `gauge` and `untyped`; `# UNIT` and `# EOF` go.

use std::fmt::{self, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// The Prometheus text format, version 0.0.4.
    Text,
}

impl Format {
    /// The format for an `Accept` header (several headers joined by `,`,
    /// none is ""):
    /// the supported media range with the highest `q` (the first one on a
    /// tie), else text 0.0.4. A range with a version other than the one
    /// served does not match, as in client_golang.
    pub fn negotiate(accept: &str) -> Format {
        let mut best: Option<(f32, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let mut q = 1.0;
            let mut version = None;
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    // A q that does not parse makes the range unacceptable.
                    "q" => q = value.parse().unwrap_or(0.0),
                    "version" => version = Some(value),
                    _ => {}
                }
            }
            let format = if media.eq_ignore_ascii_case("application/openmetrics-text") {
                match version {
                    None | Some("1.0.0") => Format::OpenMetrics,
                    Some(_) => continue,
                }
            } else if media.eq_ignore_ascii_case("text/plain") {
                match version {
                    None | Some("0.0.4") => Format::Text,
                    Some(_) => continue,
                }
            } else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Text, |(_, format)| format)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// A writer that takes prometheus-client's OpenMetrics text and writes the
/// 0.0.4 text (see the module docs). Sample lines pass straight through;
/// only comment lines, which start a line with `#` (label values cannot
/// hold a raw newline, so no sample line does), are held and rewritten.
pub struct Text004<'a, W: Write = String> {
    out: &'a mut W,
    line_start: bool,
    /// The comment line being received, while one is.
    comment: Option<String>,
    /// A `# HELP` line waiting for its `# TYPE`, which may rename it.
    help: Option<String>,
}

impl<'a, W: Write> Text004<'a, W> {
    pub fn new(out: &'a mut W) -> Self {
        Text004 {
            out,
            line_start: true,
            comment: None,
            help: None,
        }
    }

    /// Writes what is still held (a `# HELP` without a `# TYPE`).
    pub fn finish(mut self) -> fmt::Result {
        if let Some(comment) = self.comment.take() {
            self.comment_line(&comment)?;
        }
        if let Some(help) = self.help.take() {
            self.out.write_str(&help)?;
            self.out.write_char('\n')?;
        }
        Ok(())
    }

    fn comment_line(&mut self, line: &str) -> fmt::Result {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            if let Some(help) = self.help.take() {
                match help
                    .strip_prefix("# HELP ")
                    .and_then(|h| h.strip_prefix(name))
                    .filter(|h| h.starts_with(' '))
                {
                    Some(text) => {
                        writeln!(self.out, "# HELP {name}{suffix}{text}")?;
                    }
                    None => {
                        self.out.write_str(&help)?;
                        self.out.write_char('\n')?;
                    }
                }
            }
            return writeln!(self.out, "# TYPE {name}{suffix} {kind}");
        }
        if let Some(help) = self.help.take() {
            self.out.write_str(&help)?;
            self.out.write_char('\n')?;
        }
        if line.starts_with("# HELP ") {
            self.help = Some(line.to_string());
        } else if line == "# EOF" || line.starts_with("# UNIT ") {
            // Not in 0.0.4: the body ends where it ends, and the unit is
            // already part of the name.
        } else {
            self.out.write_str(line)?;
            self.out.write_char('\n')?;
        }
        Ok(())
    }
}

impl<W: Write> Write for Text004<'_, W> {
    fn write_str(&mut self, mut s: &str) -> fmt::Result {
        // The common case, first: a piece inside a sample line.
        if !self.line_start && self.comment.is_none() && !s.as_bytes().contains(&b'\n') {
            self.out.write_str(s)?;
            return Ok(());
        }
        while !s.is_empty() {
            if let Some(comment) = &mut self.comment {
                let Some(end) = newline(s) else {
                    comment.push_str(s);
                    return Ok(());
                };
                comment.push_str(&s[..end]);
                s = &s[end + 1..];
                let line = self.comment.take().unwrap_or_default();
                self.comment_line(&line)?;
                self.line_start = true;
            } else if self.line_start && s.starts_with('#') {
                self.comment = Some(String::new());
            } else {
                if self.line_start
                    && let Some(help) = self.help.take()
                {
                    self.out.write_str(&help)?;
                    self.out.write_char('\n')?;
                }
                match newline(s) {
                    Some(end) => {
                        self.out.write_str(&s[..=end])?;
                        s = &s[end + 1..];
                        self.line_start = true;
                    }
                    None => {
                        self.out.write_str(s)?;
                        self.line_start = false;
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

fn newline(s: &str) -> Option<usize> {
    s.bytes().position(|b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

    #[test]
    fn negotiation_picks_openmetrics_only_when_accepted() {
        for (accept, want) in [
            (PROMETHEUS_2, Format::OpenMetrics),
            (PROMETHEUS_3, Format::OpenMetrics),
            ("application/openmetrics-text", Format::OpenMetrics),
            (
                "Application/OpenMetrics-Text; Version=\"1.0.0\"",
                Format::OpenMetrics,
            ),
            ("", Format::Text),
            ("*/*", Format::Text),
            ("text/plain", Format::Text),
            ("text/plain;version=0.0.4", Format::Text),
            ("application/json", Format::Text),
            // Preferred by q, not by order.
            (
                "text/plain;q=0.9, application/openmetrics-text;version=1.0.0",
                Format::OpenMetrics,
            ),
            (
                "application/openmetrics-text;q=0.2, text/plain;q=0.9",
                Format::Text,
            ),
            // Refused or unsupported: the 0.0.4 fallback.
            ("application/openmetrics-text;q=0", Format::Text),
            ("application/openmetrics-text;q=abc", Format::Text),
            ("application/openmetrics-text;version=0.0.1", Format::Text),
            // A tie goes to the first listed.
            ("text/plain, application/openmetrics-text", Format::Text),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    fn to_004(pieces: &[&str]) -> String {
        let mut out = String::new();
        let mut w = Text004::new(&mut out);
        for p in pieces {
            w.write_str(p).unwrap();
        }
        w.finish().unwrap();
        out
    }

    #[test]
    fn text_004_renames_counters_and_drops_what_it_does_not_know() {
        let om = "# HELP a_seconds A gauge.\n# TYPE a_seconds gauge\n# UNIT a_seconds seconds\na_seconds 1.5\n\
                  # HELP errors Errors.\n# TYPE errors counter\nerrors_total{s=\"# x\"} 2\n\
                  # HELP build Build.\n# TYPE build info\nbuild_info{v=\"1\"} 1\n\
                  # HELP odd Odd.\n# TYPE odd unknown\nodd 3\n# EOF\n";
        let want = "# HELP a_seconds A gauge.\n# TYPE a_seconds gauge\na_seconds 1.5\n\
                    # HELP errors_total Errors.\n# TYPE errors_total counter\nerrors_total{s=\"# x\"} 2\n\
                    # HELP build_info Build.\n# TYPE build_info gauge\nbuild_info{v=\"1\"} 1\n\
                    # HELP odd Odd.\n# TYPE odd untyped\nodd 3\n";
        assert_eq!(to_004(&[om]), want);
        // However the encoder cuts its writes.
        let bytes: Vec<String> = om.chars().map(String::from).collect();
        let pieces: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(to_004(&pieces), want);
        let lines: Vec<&str> = om.split_inclusive('\n').collect();
        assert_eq!(to_004(&lines), want);
    }

    #[test]
    fn text_004_keeps_a_help_without_type_and_an_unterminated_line() {
        assert_eq!(to_004(&["# HELP x X.\n", "x 1"]), "# HELP x X.\nx 1");
        assert_eq!(to_004(&["# HELP x X."]), "# HELP x X.\n");
        assert_eq!(to_004(&["# some comment\n"]), "# some comment\n");
    }
}
