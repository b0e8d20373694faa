//! The `announce-count` prompt a joiner hears: "there are N other participants", said
//! with the prompts the language has (digits 0-20 and the tens).

/// The prompts announcing `others` other members: singular for one, tens then units
/// above twenty. Counts of 100 and more have no prompts and are not announced.
pub fn prompts(others: usize) -> Vec<String> {
    let number = match others {
        0..=20 => vec![others],
        21..=99 => [others / 10 * 10, others % 10]
            .into_iter()
            .filter(|&n| n != 0)
            .collect(),
        _ => return Vec::new(),
    };
    let (verb, noun) = if others == 1 {
        ("conf-there_is", "conf-other_participant")
    } else {
        ("conf-there_are", "conf-other_participants")
    };
    std::iter::once(verb.to_string())
        .chain(number.into_iter().map(|n| format!("digits/{n}")))
        .chain(std::iter::once(noun.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::prompts;

    #[test]
    fn counts_are_said_with_the_prompts_that_exist() {
        assert_eq!(
            prompts(1),
            ["conf-there_is", "digits/1", "conf-other_participant"]
        );
        assert_eq!(
            prompts(20),
            ["conf-there_are", "digits/20", "conf-other_participants"]
        );
        assert_eq!(
            prompts(42),
            [
                "conf-there_are",
                "digits/40",
                "digits/2",
                "conf-other_participants"
            ]
        );
        assert_eq!(prompts(90)[1..3], ["digits/90", "conf-other_participants"]);
        assert!(prompts(100).is_empty());
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prompts/en");
        for n in 1..100 {
            for p in prompts(n) {
                assert!(dir.join(format!("{p}.wav")).is_file(), "{p} exists");
            }
        }
    }
}
