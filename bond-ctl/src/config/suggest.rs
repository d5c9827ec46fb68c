//! "Did you mean" for unknown keys: serde names the unknown field and the expected ones; the
//! closest expected name, if close enough, is suggested.

/// Appends a suggestion to serde's `unknown field `x`, expected one of `a`, `b`` message.
pub fn unknown_key_hint(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else { return message.to_string() };
    let Some((unknown, expected)) = rest.split_once('`') else { return message.to_string() };
    match closest(unknown, expected.split('`').skip(1).step_by(2)) {
        Some(candidate) => format!("{message}; did you mean `{candidate}`?"),
        None => message.to_string(),
    }
}

/// The candidate closest to `unknown`, if close enough to be a typo of it.
pub fn closest<'a>(unknown: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|candidate| (strsim::normalized_damerau_levenshtein(&unknown.to_lowercase(), &candidate.to_lowercase()), candidate))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score >= 0.7)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_get_a_suggestion() {
        let m = "unknown field `failoverIntreval`, expected one of `basePolicy`, `failoverInterval`, `upDelay`";
        assert!(unknown_key_hint(m).ends_with("did you mean `failoverInterval`?"), "{}", unknown_key_hint(m));
        let far = "unknown field `colour`, expected one of `basePolicy`, `upDelay`";
        assert_eq!(unknown_key_hint(far), far);
        assert_eq!(unknown_key_hint("invalid type"), "invalid type");
    }
}
