//! Reading a dump as a stream of documents, with bounds: a size limit on the
//! input, no NUL bytes (binary data is refused at once instead of being read
//! to the limit), one memory budget for the values of every document, and the
//! file line of every document and error.

use std::io::{self, BufRead, BufReader, Read};

use super::doc::{BUDGET_BREACHED, Budget, Doc};

/// The default for `--max-dump-size`.
pub const DEFAULT_MAX_DUMP_SIZE: u64 = 512 << 20;

/// Bounds on reading a dump.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Refuse inputs longer than this many bytes.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: DEFAULT_MAX_DUMP_SIZE,
        }
    }
}

/// Why reading stopped for good.
#[derive(Debug)]
pub enum Fatal {
    TooLarge(u64),
    Nul(u64),
    Io(io::Error),
    /// Document number, line, detail.
    Budget(usize, usize),
}

/// Enforces the size limit and refuses NUL bytes as the raw input is read.
struct Guard<R> {
    inner: R,
    read: u64,
    max: u64,
    fatal: Option<Fatal>,
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.fatal = Some(Fatal::Io(io::Error::new(e.kind(), e.to_string())));
            }
        })?;
        if let Some(i) = buf[..n].iter().position(|b| *b == 0) {
            self.fatal = Some(Fatal::Nul(self.read + i as u64));
            return Err(io::Error::new(io::ErrorKind::InvalidData, "NUL byte"));
        }
        self.read += n as u64;
        if self.read > self.max {
            self.fatal = Some(Fatal::TooLarge(self.max));
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "too large"));
        }
        Budget::set_input(usize::try_from(self.read).unwrap_or(usize::MAX));
        Ok(n)
    }
}

/// Counts the lines serde_json has consumed: it reads one byte at a time,
/// so the count is exact when a document starts.
struct LineCounter<'a, R>(&'a mut R);

impl<R: Read> Read for LineCounter<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        for b in &buf[..n] {
            Budget::saw_byte(*b);
        }
        Ok(n)
    }
}

/// What the reader hands over for each document.
pub enum Event {
    /// Document number, first line, the document.
    Doc(usize, usize, Doc),
    /// A problem that skips a document (or the rest of a JSON stream).
    Warning(String),
}

/// Read `reader` document by document, calling `on` for each. `name` is used
/// in messages. Returns what stopped the read, if anything did.
pub fn read_documents<R: Read>(
    name: &str,
    reader: R,
    limits: Limits,
    on: &mut dyn FnMut(Event),
) -> Result<(), Fatal> {
    Budget::reset();
    let mut reader = BufReader::with_capacity(
        64 * 1024,
        Guard {
            inner: reader,
            read: 0,
            max: limits.max_bytes,
            fatal: None,
        },
    );
    let fatal = |r: &mut BufReader<Guard<R>>, e: io::Error| {
        r.get_mut().fatal.take().unwrap_or(Fatal::Io(e))
    };
    // Skip leading whitespace to tell JSON from YAML, counting its lines.
    let (mut lines, mut skipped) = (0, 0);
    let first = loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) => return Err(fatal(&mut reader, e)),
        };
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                lines += buf[..i].iter().filter(|b| **b == b'\n').count();
                let first = buf[i];
                skipped += i;
                reader.consume(i);
                break first;
            }
            None => {
                let n = buf.len();
                lines += buf.iter().filter(|b| **b == b'\n').count();
                skipped += n;
                reader.consume(n);
            }
        }
    };
    let result = if first == b'{' || first == b'[' {
        read_json(name, &mut reader, lines, on)
    } else {
        read_yaml(name, &mut reader, (lines, skipped), on)
    };
    match result {
        Err(Some(f)) => Err(f),
        Err(None) => Err(fatal(&mut reader, io::Error::other("read failed"))),
        Ok(()) => match reader.get_mut().fatal.take() {
            Some(f) => Err(f),
            None => Ok(()),
        },
    }
}

fn read_json<R: BufRead>(
    name: &str,
    reader: &mut R,
    skipped_lines: usize,
    on: &mut dyn FnMut(Event),
) -> Result<(), Option<Fatal>> {
    Budget::set_line(skipped_lines + 1);
    let stream = serde_json::Deserializer::from_reader(LineCounter(reader)).into_iter::<Doc>();
    for (index, result) in stream.enumerate() {
        let document = index + 1;
        match result {
            Ok(doc) => on(Event::Doc(document, doc.line, doc)),
            Err(e) if e.is_io() => return Err(None),
            Err(e) => {
                let line = e.line() + skipped_lines;
                if e.to_string().contains(BUDGET_BREACHED) {
                    return Err(Some(Fatal::Budget(document, line)));
                }
                let detail = e.to_string();
                let detail = detail.split(" at line ").next().unwrap_or(&detail);
                on(Event::Warning(format!(
                    "{name}: document {document} (line {line}, column {}): invalid JSON: {detail}; the rest of the file was skipped",
                    e.column()
                )));
                break;
            }
        }
    }
    Ok(())
}

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    // Dumps of large clusters are big single documents; the memory of what
    // they hold is bounded by our own budget, which sees aliases expanded.
    budget.max_events = usize::MAX / 2;
    budget.max_nodes = usize::MAX / 2;
    budget.max_total_scalar_bytes = usize::MAX / 2;
    budget.max_reader_input_bytes = None;
    options.budget = Some(budget);
    options
}

/// A line that separates YAML documents (`---`, `--- ...`, `...`).
fn is_separator(line: &[u8]) -> bool {
    let bare = line.trim_ascii_end();
    bare == b"---" || bare.starts_with(b"--- ") || bare == b"..."
}

fn read_yaml<R: BufRead>(
    name: &str,
    reader: &mut R,
    (skipped_lines, skipped_bytes): (usize, usize),
    on: &mut dyn FnMut(Event),
) -> Result<(), Option<Fatal>> {
    let options = yaml_options();
    let mut doc = Vec::new();
    let mut line = Vec::new();
    let (mut line_no, mut start_line, mut document) = (skipped_lines, skipped_lines + 1, 0);
    // Byte offsets in the file of the next line and of the document being read.
    let (mut offset, mut start) = (skipped_bytes, skipped_bytes);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).is_err() {
            return Err(None);
        }
        let eof = line.is_empty();
        if eof || is_separator(&line) {
            if !doc.is_empty() {
                document += 1;
                let at = Start {
                    document,
                    line: start_line,
                    offset: start,
                };
                yaml_document(name, &doc, at, &options, on)?;
                doc.clear();
            }
            if eof {
                return Ok(());
            }
            start_line = line_no + 2;
            start = offset + line.len();
        } else {
            doc.extend_from_slice(&line);
        }
        line_no += 1;
        offset += line.len();
    }
}

/// Where a YAML document starts.
struct Start {
    document: usize,
    line: usize,
    offset: usize,
}

fn yaml_document(
    name: &str,
    bytes: &[u8],
    Start {
        document,
        line,
        offset,
    }: Start,
    options: &serde_saphyr::Options,
    on: &mut dyn FnMut(Event),
) -> Result<(), Option<Fatal>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(e) => {
            let bad = e.valid_up_to();
            let at = line + bytes[..bad].iter().filter(|b| **b == b'\n').count();
            on(Event::Warning(format!(
                "{name}: document {document} (line {line}): invalid UTF-8 at byte {} (line {at}); invalid bytes were replaced with U+FFFD",
                offset + bad
            )));
            String::from_utf8_lossy(bytes)
        }
    };
    if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    }) {
        return Ok(());
    }
    match serde_saphyr::from_str_with_options::<Doc>(&text, options.clone()) {
        Ok(doc) => on(Event::Doc(document, line, doc)),
        Err(e) => {
            let detail = e.to_string();
            if detail.contains(BUDGET_BREACHED) {
                return Err(Some(Fatal::Budget(document, line)));
            }
            // The parser counts lines from the document; say the file's line.
            let at = e
                .location()
                .map(|l| {
                    format!(
                        " at line {}, column {}",
                        line as u64 + l.line() - 1,
                        l.column()
                    )
                })
                .unwrap_or_default();
            let detail = detail.lines().next().unwrap_or("").trim();
            let detail = detail.split(" at line ").next().unwrap_or(detail);
            on(Event::Warning(format!(
                "{name}: document {document} (line {line}): invalid YAML{at}, document skipped: {detail}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators() {
        assert!(is_separator(b"---\n"));
        assert!(is_separator(b"--- # x\r\n"));
        assert!(is_separator(b"...\n"));
        assert!(!is_separator(b"----\n"));
        assert!(!is_separator(b" ---\n"));
    }
}
