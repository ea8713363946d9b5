//! "Did you mean …?" — the closest known name to a misspelt one.

/// The candidate closest to `name` by Jaro-Winkler similarity, if it is close enough to be a
/// plausible typo (similarity ≥ 0.8, or one is a prefix of the other).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lname = name.to_ascii_lowercase();
    let mut best: Option<(&str, f64)> = None;
    for c in candidates {
        if c == name {
            continue;
        }
        let lc = c.to_ascii_lowercase();
        let mut score = strsim::jaro_winkler(&lname, &lc);
        if lname.len() >= 3 && (lc.starts_with(&lname) || lname.starts_with(&lc)) {
            score = score.max(0.85);
        }
        if score >= 0.8 && best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos() {
        assert_eq!(
            closest("raw-event", ["raw-events", "orders"]),
            Some("raw-events")
        );
        assert_eq!(closest("runtim", ["runtime", "mode"]), Some("runtime"));
        assert_eq!(closest("zzz", ["raw-events"]), None);
    }
}
