//! fnmatch-style glob matching (`*`, `?`, `[...]`, `\` escapes) as systemd applies it: to
//! sysctl.d keys (where `*` never crosses a `.` separator, since systemd-sysctl globs the
//! `/proc/sys` path) and to interface-name patterns in network configuration.
//!
//! The pattern comes from files an admin (or an attacker) wrote, so matching must not
//! backtrack: it keeps only the position after the last `*`, which makes it
//! O(pattern × name) in the worst case — and names are short (a sysctl component, an interface
//! name) — never exponential.

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    Any,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Literal(char),
}

fn compile(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::with_capacity(chars.len());
    let mut i = 0;
    // Once a `[` has no closing `]`, no later one has either: scanning again for each would
    // be quadratic.
    let mut unclosed = false;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                // Consecutive stars are one star.
                if out.last() != Some(&Token::Star) {
                    out.push(Token::Star);
                }
                i += 1;
            }
            '?' => {
                out.push(Token::Any);
                i += 1;
            }
            '[' if !unclosed => match class(&chars[i + 1..]) {
                Some((token, used)) => {
                    out.push(token);
                    i += 1 + used;
                }
                // An unclosed `[` is an ordinary character, as in fnmatch.
                None => {
                    unclosed = true;
                    out.push(Token::Literal('['));
                    i += 1;
                }
            },
            '\\' if i + 1 < chars.len() => {
                out.push(Token::Literal(chars[i + 1]));
                i += 2;
            }
            c => {
                out.push(Token::Literal(c));
                i += 1;
            }
        }
    }
    out
}

/// Parses a bracket expression after its `[`; returns the token and the characters used
/// (including the closing `]`), or None when it is not closed.
fn class(rest: &[char]) -> Option<(Token, usize)> {
    let mut i = 0;
    let negated = matches!(rest.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while i < rest.len() {
        let c = rest[i];
        // A `]` right after the opening (or its negation) is a member, not the end.
        if c == ']' && !first {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        first = false;
        if i + 2 < rest.len() && rest[i + 1] == '-' && rest[i + 2] != ']' {
            ranges.push((c, rest[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    None
}

fn matches_one(token: &Token, c: char) -> bool {
    match token {
        Token::Star => true,
        Token::Any => true,
        Token::Literal(l) => *l == c,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
        }
    }
}

fn match_tokens(tokens: &[Token], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    // After a `*`: the token after it and the name position it was last tried at.
    let mut resume: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(Token::Star) => {
                resume = Some((t + 1, n));
                t += 1;
            }
            Some(tok) if matches_one(tok, name[n]) => {
                t += 1;
                n += 1;
            }
            _ => match resume {
                // Let the last star swallow one more character and retry from there. Every
                // other token matches exactly one character, so earlier stars never need to
                // give anything back: this is why no deeper backtracking is needed.
                Some((after, at)) => {
                    t = after;
                    n = at + 1;
                    resume = Some((after, at + 1));
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|tok| *tok == Token::Star)
}

/// fnmatch(pattern, name, 0): `*` matches any characters, including `.` and `/`.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    match_tokens(&compile(pattern), &name)
}

/// Is `key` a glob pattern (systemd-sysctl treats keys with these characters as patterns)?
pub fn is_pattern(key: &str) -> bool {
    key.contains(['*', '?', '['])
}

/// Does a sysctl.d key pattern (dotted form, a literal dot written `/`) match the sysctl
/// `name`? systemd-sysctl globs the `/proc/sys` path, so wildcards match within one
/// component and never across a `.`.
pub fn sysctl_match(pattern: &str, name: &str) -> bool {
    let mut p = pattern.split('.');
    let mut n = name.split('.');
    loop {
        match (p.next(), n.next()) {
            (None, None) => return true,
            (Some(pc), Some(nc)) if fnmatch(pc, nc) => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_semantics() {
        assert!(fnmatch("eth*", "eth0"));
        assert!(fnmatch("eth*", "eth0.100"));
        assert!(fnmatch("*", ""));
        assert!(!fnmatch("?", ""));
        assert!(fnmatch("a?c", "abc"));
        assert!(fnmatch("e[nt]h[0-9]", "eth1"));
        assert!(!fnmatch("e[!t]h0", "eth0"));
        assert!(fnmatch("e[^x]h0", "eth0"));
        assert!(fnmatch("[]]", "]"));
        assert!(fnmatch("[!]]", "a"));
        assert!(fnmatch("a[", "a["), "an unclosed bracket is literal");
        assert!(fnmatch("\\*", "*"));
        assert!(!fnmatch("\\*", "x"));
        assert!(fnmatch("*b*d", "abcbd"));
        assert!(!fnmatch("*b*d", "abcbe"));
        assert!(fnmatch("a*b*c*d", "aXbXXcXXXd"));
        assert!(!fnmatch("a*b", "ab-"));
        assert!(fnmatch("[a-]", "-"), "a trailing dash is a member");
    }

    #[test]
    fn sysctl_wildcards_stay_in_one_component() {
        assert!(sysctl_match(
            "net.ipv4.conf.*.rp_filter",
            "net.ipv4.conf.eth0.rp_filter"
        ));
        assert!(!sysctl_match(
            "net.ipv4.conf.*.rp_filter",
            "net.ipv4.conf.eth0.arp_filter"
        ));
        assert!(sysctl_match(
            "net.ipv4.conf.*.rp_filter",
            "net.ipv4.conf.eth0/100.rp_filter"
        ));
        assert!(!sysctl_match("net.ipv4.*", "net.ipv4.conf.all.rp_filter"));
        assert!(sysctl_match(
            "net.ipv4.icmp_*",
            "net.ipv4.icmp_echo_ignore_all"
        ));
    }

    /// The reproducer from issue 11: exponential backtracking made this run for minutes.
    /// The bound is generous (a linear matcher does it in microseconds); what it guards
    /// against is the exponential one, which does not finish in hours.
    #[test]
    fn pathological_patterns_finish() {
        let start = std::time::Instant::now();
        let stars = format!("net.{}x", "*".repeat(5000));
        assert!(!sysctl_match(&stars, "net.ipv4.conf.eth0.rp_filter"));
        let alternating = format!("{}b", "*a".repeat(5000));
        let name = "a".repeat(5000);
        assert!(!fnmatch(&alternating, &name));
        assert!(fnmatch(&"*a".repeat(2000), &name));
        let brackets = "[".repeat(20_000);
        assert!(!fnmatch(&brackets, "x"));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
