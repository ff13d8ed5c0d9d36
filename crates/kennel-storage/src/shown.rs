//! Showing untrusted names and text to the operator.
//!
//! Member names of an imported tarball, names of files a VE wrote, strings
//! read from a template's or a VE's files: their author may be hostile, and
//! the operator reads Kennel's messages on a terminal. Printed as they are,
//! such a string could move the cursor, rewrite earlier lines, set the
//! window title, reorder text (bidirectional overrides), split one message
//! into several (newlines), or fill the screen (a name may be 1 MiB long).
//!
//! So every such string goes through [`shown`] before it enters a message:
//! printable text stays as it is, everything else becomes a visible escape
//! (`\n`, `\x1b`, `\u{202e}`, `\xff` for a byte that is not UTF-8), a
//! backslash is doubled so that an escape cannot be forged, and the result
//! is cut at [`SHOWN_MAX`] characters. [`terminal_safe`] is the last line
//! of defence for whole messages (the CLI passes every line it prints to the
//! operator through it): it escapes only what a terminal would act on, so
//! text that already went through [`shown`] passes unchanged.

use std::borrow::Cow;
use std::fmt::Write as _;

/// At most this many characters of a name are shown; the rest is replaced
/// by `...` and the name's length.
pub const SHOWN_MAX: usize = 200;

/// Characters that reorder the text around them (the "Trojan Source"
/// controls): a name holding one could make a message read differently
/// from what it says.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Appends `c` to `out`, escaped if a terminal would act on it.
fn push_char(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if c.is_ascii_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        // C1 controls (U+0080-U+009F: some terminals take U+009B as CSI)
        // and the reordering controls.
        c if c.is_control() || is_bidi_control(c) => {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `raw` (a file name, a member name, a line of a VE's file) as text that is
/// safe to print: escaped, and at most [`SHOWN_MAX`] characters of it.
pub fn shown(raw: impl AsRef<[u8]>) -> String {
    let raw = raw.as_ref();
    let mut out = String::new();
    let mut count = 0;
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if count == SHOWN_MAX {
                let _ = write!(out, "...[{} bytes]", raw.len());
                return out;
            }
            count += 1;
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                push_char(&mut out, c);
            }
        }
        for b in chunk.invalid() {
            if count == SHOWN_MAX {
                let _ = write!(out, "...[{} bytes]", raw.len());
                return out;
            }
            count += 1;
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// `text` with every character a terminal would act on (controls, escape
/// sequences, newlines, reordering controls) escaped as [`shown`] does;
/// backslashes and length are left alone, so text that went through
/// [`shown`] comes back unchanged.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_char(&mut out, c);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_names_are_shown_as_they_are() {
        assert_eq!(shown("etc/passwd"), "etc/passwd");
        assert_eq!(shown("café ünïcode"), "café ünïcode");
        assert_eq!(shown(""), "");
    }

    #[test]
    fn controls_and_escape_sequences_become_visible() {
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(
            shown("\x1b[2J\x1b]0;owned\x07"),
            "\\x1b[2J\\x1b]0;owned\\x07"
        );
        assert_eq!(shown("tab\there\r"), "tab\\there\\r");
        assert_eq!(shown("del\x7f"), "del\\x7f");
        assert_eq!(shown("c1\u{9b}31m"), "c1\\u{009b}31m");
        assert_eq!(shown("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        let out = shown("\x1b\n\u{9b}\u{2066}\x00");
        assert!(
            !out.chars().any(|c| c.is_control() || is_bidi_control(c)),
            "{out:?}"
        );
    }

    #[test]
    fn invalid_utf8_is_shown_as_bytes() {
        assert_eq!(shown(b"ok\xff\xfe"), "ok\\xff\\xfe");
        assert_eq!(shown(b"\xc3"), "\\xc3");
        assert_eq!(shown(b"caf\xc3\xa9"), "café");
    }

    #[test]
    fn escapes_cannot_be_forged() {
        // A name that spells an escape is told apart from one that needed it.
        assert_eq!(shown("a\\nb"), "a\\\\nb");
        assert_ne!(shown("a\\nb"), shown("a\nb"));
    }

    #[test]
    fn long_names_are_cut() {
        let long = vec![b'a'; 1 << 20];
        let out = shown(&long);
        assert!(out.len() < SHOWN_MAX + 32, "{}", out.len());
        assert!(out.ends_with(&format!("...[{} bytes]", 1 << 20)), "{out}");
        let exact = "b".repeat(SHOWN_MAX);
        assert_eq!(shown(&exact), exact, "a name of exactly the limit is whole");
        let escapes = vec![0x1bu8; 10_000];
        assert!(shown(&escapes).len() < 4 * SHOWN_MAX + 32);
    }

    #[test]
    fn terminal_safe_leaves_shown_text_alone() {
        for raw in [&b"a\x1b[31mb"[..], b"\xff\n", b"x\\y", b"plain"] {
            let s = shown(raw);
            assert_eq!(terminal_safe(&s), s.as_str());
        }
        assert_eq!(terminal_safe("a\x1b]0;t\x07"), "a\\x1b]0;t\\x07");
        assert_eq!(terminal_safe("back\\slash"), "back\\slash");
        assert!(matches!(terminal_safe("clean text"), Cow::Borrowed(_)));
    }
}
