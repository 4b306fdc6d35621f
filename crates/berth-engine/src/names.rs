//! Container names: docker-style random "adjective_surname" names and
//! docker's rule for names a user may choose.
//!
//! The caller supplies the randomness, so a name is a pure function of a
//! number and tests are deterministic.

/// Adjectives for the left half of a generated name.
#[rustfmt::skip]
const ADJECTIVES: &[&str] = &[
    "admiring", "adoring", "agile", "amazing", "amused", "ardent", "artful", "awesome", "blissful", "bold",
    "boring", "brave", "breezy", "bright", "busy", "calm", "candid", "charming", "cheerful", "clever",
    "cosmic", "crisp", "curious", "dapper", "daring", "dazzling", "determined", "diligent", "dreamy", "eager",
    "earnest", "ecstatic", "elastic", "elegant", "eloquent", "epic", "fearless", "fervent", "festive", "focused",
    "friendly", "frosty", "funny", "gallant", "gentle", "gifted", "gleaming", "glowing", "graceful", "happy",
    "hardy", "hopeful", "humble", "inspiring", "jolly", "jovial", "keen", "kind", "lively", "loving",
    "lucid", "lucky", "mellow", "merry", "mighty", "modest", "nifty", "nimble", "noble", "optimistic",
    "patient", "peaceful", "plucky", "polite", "practical", "quick", "quiet", "quirky", "radiant", "relaxed",
    "resolute", "serene", "sharp", "shiny", "silly", "sleepy", "snappy", "sparkling", "spirited", "steady",
    "stoic", "sunny", "swift", "tender", "thirsty", "tidy", "trusting", "upbeat", "vibrant", "vigilant",
    "vivid", "witty", "wonderful", "zealous", "zen",
];

/// Surnames of notable scientists, mathematicians, engineers and hackers.
#[rustfmt::skip]
const SURNAMES: &[&str] = &[
    "adleman", "agnesi", "ampere", "archimedes", "aryabhata", "babbage", "backus", "baran", "bardeen", "bartik",
    "bell", "berners", "bhabha", "bohr", "boltzmann", "boole", "bose", "brahe", "brattain", "burnell",
    "cantor", "carnot", "carson", "cerf", "chandrasekhar", "clarke", "codd", "conway", "copernicus", "corbato",
    "cray", "curie", "darwin", "descartes", "diffie", "dijkstra", "dirac", "einstein", "elion", "engelbart",
    "euclid", "euler", "faraday", "fermat", "fermi", "feynman", "floyd", "fourier", "franklin", "galileo",
    "galois", "gauss", "germain", "gibbs", "godel", "goldberg", "goldwasser", "gosling", "hamilton", "hamming",
    "hawking", "heisenberg", "hellman", "hertz", "hilbert", "hoare", "hodgkin", "hopper", "hubble", "huffman",
    "hypatia", "iverson", "jackson", "johnson", "joule", "kahn", "kare", "karp", "kay", "kepler",
    "kernighan", "khwarizmi", "kilby", "knuth", "kovalevskaya", "lagrange", "lamarr", "lamport", "lampson", "laplace",
    "leavitt", "leibniz", "licklider", "liskov", "lovelace", "maxwell", "mccarthy", "mcclintock", "meitner", "mendel",
    "mendeleev", "merkle", "metcalfe", "micali", "milner", "minsky", "mirzakhani", "moore", "naur", "newell",
    "newton", "noether", "noyce", "nygaard", "ohm", "pascal", "pasteur", "pauli", "payne", "perlis",
    "pike", "planck", "poincare", "postel", "rabin", "raman", "ramanujan", "riemann", "ritchie", "rivest",
    "rubin", "sagan", "sammet", "schrodinger", "scott", "shamir", "shannon", "somerville", "stallman", "stroustrup",
    "sutherland", "tarjan", "tesla", "thacker", "thompson", "torvalds", "turing", "vaughan", "volta", "wilkes",
    "wing", "wirth", "wozniak", "wu", "yalow", "yonath",
];

/// A docker-style name such as "quirky_lovelace", chosen by `rand`. The same
/// number always gives the same name. Like docker, never "boring_wozniak"
/// (Steve Wozniak is not boring): that pick moves to the next surname.
pub fn random_name(rand: u64) -> String {
    let left = ADJECTIVES.len() as u64;
    let right = SURNAMES.len() as u64;
    let adjective = ADJECTIVES
        .get((rand % left) as usize)
        .copied()
        .unwrap_or("happy");
    let mut surname_index = (rand / left) % right;
    if adjective == "boring" && SURNAMES.get(surname_index as usize) == Some(&"wozniak") {
        surname_index = (surname_index + 1) % right;
    }
    let surname = SURNAMES
        .get(surname_index as usize)
        .copied()
        .unwrap_or("turing");
    format!("{adjective}_{surname}")
}

/// [`random_name`] for docker's retries after a name clash: from the second
/// attempt on (`retry > 0`) a digit 0-9, also taken from `rand`, is
/// appended ("quirky_lovelace7").
pub fn random_name_with_retry(rand: u64, retry: u32) -> String {
    let mut name = random_name(rand);
    if retry > 0 {
        let combos = ADJECTIVES.len() as u64 * SURNAMES.len() as u64;
        name.push_str(&((rand / combos) % 10).to_string());
    }
    name
}

/// Docker's rule for container names, `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`: an
/// optional leading slash, then at least two characters, the first a letter
/// or digit. A one-character name such as "a" is rejected, as in docker.
pub fn valid_name(s: &str) -> bool {
    let name = s.strip_prefix('/').unwrap_or(s);
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !first.is_ascii_alphanumeric() {
        return false;
    }
    let mut rest = 0;
    for c in chars {
        if !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            return false;
        }
        rest += 1;
    }
    rest >= 1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn lists_are_large_unique_and_lowercase() {
        assert!(ADJECTIVES.len() >= 100, "{} adjectives", ADJECTIVES.len());
        assert!(SURNAMES.len() >= 150, "{} surnames", SURNAMES.len());
        for list in [ADJECTIVES, SURNAMES] {
            let unique: HashSet<_> = list.iter().collect();
            assert_eq!(unique.len(), list.len(), "duplicates in a name list");
            for w in list {
                assert!(
                    !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()),
                    "{w}"
                );
            }
        }
        assert!(ADJECTIVES.contains(&"boring") && SURNAMES.contains(&"wozniak"));
    }

    #[test]
    fn names_are_deterministic() {
        let l = ADJECTIVES.len() as u64;
        assert_eq!(random_name(0), "admiring_adleman");
        assert_eq!(random_name(1), "adoring_adleman");
        assert_eq!(random_name(l), "admiring_agnesi");
        assert_eq!(random_name(l + 2), "agile_agnesi");
        assert_eq!(random_name(12345), random_name(12345));
        let wrap = l * SURNAMES.len() as u64;
        assert_eq!(random_name(wrap), random_name(0));
    }

    #[test]
    fn steve_wozniak_is_not_boring() {
        let l = ADJECTIVES.len() as u64;
        let boring = ADJECTIVES.iter().position(|a| *a == "boring").unwrap() as u64;
        let wozniak = SURNAMES.iter().position(|s| *s == "wozniak").unwrap() as u64;
        let rand = wozniak * l + boring;
        assert_eq!(
            random_name(rand),
            format!("boring_{}", SURNAMES[wozniak as usize + 1])
        );
        for r in 0..(l * SURNAMES.len() as u64) {
            assert_ne!(random_name(r), "boring_wozniak");
        }
        assert_eq!(random_name(wozniak * l), "admiring_wozniak");
    }

    #[test]
    fn generated_names_are_valid() {
        for r in (0..100_000u64).step_by(7) {
            let name = random_name(r.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            assert!(valid_name(&name), "{name}");
        }
    }

    #[test]
    fn retries_append_a_digit() {
        assert_eq!(random_name_with_retry(0, 0), "admiring_adleman");
        assert_eq!(random_name_with_retry(0, 1), "admiring_adleman0");
        let combos = ADJECTIVES.len() as u64 * SURNAMES.len() as u64;
        assert_eq!(
            random_name_with_retry(combos * 7 + 1, 3),
            "adoring_adleman7"
        );
    }

    #[test]
    fn docker_name_rule() {
        for ok in ["ab", "web", "/web", "my-app_1.0", "0day", "A1", "x.y", "a-"] {
            assert!(valid_name(ok), "{ok} should be valid");
        }
        for bad in [
            "", "/", "a", "/a", "-web", "_web", ".web", "web app", "web/1", "//web", "wéb", "web!",
        ] {
            assert!(!valid_name(bad), "{bad} should be invalid");
        }
    }
}
