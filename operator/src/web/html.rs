//! Writing HTML safely: [`Html`] takes text from anywhere only through
//! [`Html::text`], which escapes it, and markup only as `&'static str`, so
//! nothing read from the cluster (never `'static`) can become markup. The
//! stylesheet is inline, and the Content-Security-Policy names its hash.

use std::sync::LazyLock;

/// A page being written.
pub struct Html {
    buf: String,
}

impl Html {
    pub fn with_capacity(n: usize) -> Html {
        Html {
            buf: String::with_capacity(n),
        }
    }

    /// Markup: only literals of this program.
    pub fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.buf.push_str(markup);
        self
    }

    /// Text, escaped for element content and for a quoted attribute value.
    pub fn text(&mut self, s: &str) -> &mut Self {
        escape_into(&mut self.buf, s);
        self
    }

    /// A whole number.
    pub fn num(&mut self, n: impl Into<i64>) -> &mut Self {
        let n: i64 = n.into();
        self.buf.push_str(&n.to_string());
        self
    }

    /// `<tag class="…">text</tag>` for a literal tag and class.
    pub fn el(&mut self, open: &'static str, text: &str, close: &'static str) -> &mut Self {
        self.raw(open).text(text).raw(close)
    }

    /// `<a href="…">text</a>` to one of our own pages (`href` built by [`Link`]).
    pub fn link(&mut self, href: &Link, text: &str) -> &mut Self {
        self.raw("<a href=\"")
            .text(&href.0)
            .raw("\">")
            .text(text)
            .raw("</a>")
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn finish(self) -> String {
        self.buf
    }
}

/// `&`, `<`, `>`, `"` and `'` as character references; everything else as is.
pub fn escape_into(out: &mut String, s: &str) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// A link to one of our pages: a path of our own and query values
/// percent-encoded, so a value from the cluster cannot leave its parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link(pub String);

impl Link {
    pub fn path(path: &str) -> Link {
        Link(path.to_string())
    }

    /// A path segment appended (percent-encoded).
    pub fn segment(mut self, s: &str) -> Link {
        self.0.push('/');
        encode_into(&mut self.0, if s.is_empty() { "_" } else { s });
        self
    }

    /// `name=value` added to the query (both percent-encoded); empty values are left out.
    pub fn param(mut self, name: &str, value: &str) -> Link {
        if value.is_empty() {
            return self;
        }
        self.0.push(if self.0.contains('?') { '&' } else { '?' });
        encode_into(&mut self.0, name);
        self.0.push('=');
        encode_into(&mut self.0, value);
        self
    }

    /// A fragment in this document (`#id`).
    pub fn fragment(id: &str) -> Link {
        let mut s = String::from("#");
        encode_into(&mut s, id);
        Link(s)
    }
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
pub fn encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// The one stylesheet, inlined into every page: no request for it, and it
/// works from a file with no server.
pub const CSS: &str = include_str!("style.css");

/// `'sha256-…'` of [`CSS`], for the Content-Security-Policy.
pub static CSS_HASH: LazyLock<String> = LazyLock::new(|| {
    let digest = ring::digest::digest(&ring::digest::SHA256, CSS.as_bytes());
    format!("'sha256-{}'", base64(digest.as_ref()))
});

/// The policy of the operator's pages: nothing but the inline stylesheet
/// (by its hash), the refresh script and JSON from the page's own origin.
pub static SERVER_CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; script-src 'self'; connect-src 'self'; \
         img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        *CSS_HASH
    )
});

/// The policy of a file written by `report -o html`: the inline stylesheet only.
pub static FILE_CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; form-action 'none'; base-uri 'none'",
        *CSS_HASH
    )
});

/// Standard base64 with padding (RFC 4648), for the stylesheet's hash.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        let mut h = Html::with_capacity(0);
        h.raw("<p title=\"")
            .text("\"><img src=x onerror=alert(1)>")
            .raw("\">")
            .text("<img src=x onerror=alert(1)> & 'q'")
            .raw("</p>");
        assert_eq!(
            h.finish(),
            "<p title=\"&quot;&gt;&lt;img src=x onerror=alert(1)&gt;\">\
             &lt;img src=x onerror=alert(1)&gt; &amp; &#39;q&#39;</p>"
        );
    }

    #[test]
    fn links_encode_values_so_they_cannot_leave_their_parameter() {
        let l = Link::path("/objects")
            .param("q", "a&b=c \"<x>\"")
            .param("kind", "")
            .param("ns", "é");
        assert_eq!(l.0, "/objects?q=a%26b%3Dc%20%22%3Cx%3E%22&ns=%C3%A9");
        let l = Link::path("/objects")
            .segment("Kustomization")
            .segment("")
            .segment("a/b");
        assert_eq!(l.0, "/objects/Kustomization/_/a%2Fb");
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
        assert!(
            CSS_HASH.starts_with("'sha256-") && CSS_HASH.len() == 53,
            "{}",
            *CSS_HASH
        );
    }
}
