//! Untrusted text quoted in an error message: at most a short prefix.
//!
//! An error that echoes its input whole turns a 16 KiB magnet, a pasted
//! file or a hostile push body into 16 KiB of stderr (or of HTTP answer);
//! every error of the workspace that shows outside input goes through
//! [`short`], so the bound is one number.

/// How many characters of untrusted text an error shows.
pub const SHOWN_CHARS: usize = 80;

/// The first [`SHOWN_CHARS`] characters of `text`, and `…` when there was
/// more.
///
/// ```
/// assert_eq!(xus_codec::quote::short("main"), "main");
/// let long = "x".repeat(5_000);
/// assert_eq!(xus_codec::quote::short(&long).chars().count(), 81);
/// ```
pub fn short(text: &str) -> String {
    let mut chars = text.chars();
    let mut quoted: String = chars.by_ref().take(SHOWN_CHARS).collect();
    if chars.next().is_some() {
        quoted.push('…');
    }
    quoted
}
