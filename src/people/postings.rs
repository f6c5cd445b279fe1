//! People's postings: the compact per-person index funnels and retention read. For one
//! event type and one hour (or UTC day), each event as 12 bytes: the person's key and the
//! milliseconds since the period's start, with a flag for bots. Sorted and without exact
//! repeats, so equal recounts encode equal bytes (`rollups verify` compares them as such).
//!
//! A 30-day funnel of three steps reads the three types' postings, tens of bytes per
//! person, rather than every event's row and payload.

use super::Person;

/// One event in a period's postings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Posting {
    pub person: Person,
    /// Milliseconds since the period's start (a day has 86,400,000: 27 bits).
    pub offset_ms: u32,
    pub bot: bool,
}

pub const POSTING_BYTES: usize = 12;

/// The offset's top bit: the event was classified as a bot's.
const BOT_FLAG: u32 = 1 << 31;

/// `postings` sorted, deduplicated and encoded in parts of at most `max_part_bytes`
/// (at least one posting a part). A part begins at a person whose key says so (about one
/// in `PEOPLE_PER_PART`), or once the one before is full: where it begins depends on the
/// people around, not on those before, so a refold that drops one person's postings (an
/// erasure) leaves the other parts as they were, and a store writes only the one changed.
pub fn encode(mut postings: Vec<Posting>, max_part_bytes: usize) -> Vec<Vec<u8>> {
    postings.sort_unstable();
    postings.dedup();
    let per_part = (max_part_bytes / POSTING_BYTES).max(1);
    let mut parts = Vec::new();
    let mut part: Vec<u8> = Vec::new();
    let mut previous = None;
    for posting in &postings {
        let full = part.len() == per_part * POSTING_BYTES;
        let begins = previous != Some(posting.person) && posting.person % PEOPLE_PER_PART == 0;
        if !part.is_empty() && (full || begins) {
            parts.push(std::mem::take(&mut part));
        }
        let flagged = posting.offset_ms | if posting.bot { BOT_FLAG } else { 0 };
        part.extend_from_slice(&posting.person.to_be_bytes());
        part.extend_from_slice(&flagged.to_be_bytes());
        previous = Some(posting.person);
    }
    if !part.is_empty() {
        parts.push(part);
    }
    parts
}

/// People a postings part holds on average, when it is not full (person keys are hashes,
/// so one in this many begins a part).
const PEOPLE_PER_PART: u64 = 1_024;

/// The span of one encoded part holding `person`'s postings (found by bisection: parts
/// are sorted by person first), for `decode`.
pub fn span_of(part: &[u8], person: Person) -> Result<&[u8], String> {
    if !part.len().is_multiple_of(POSTING_BYTES) {
        return Err(format!(
            "a postings part of {} bytes, not a multiple of {POSTING_BYTES}",
            part.len()
        ));
    }
    let person_at = |index: usize| {
        let at = index * POSTING_BYTES;
        u64::from_be_bytes(part[at..at + 8].try_into().expect("8 bytes"))
    };
    let count = part.len() / POSTING_BYTES;
    let first = partition_point(count, |index| person_at(index) < person);
    let end = partition_point(count, |index| person_at(index) <= person);
    Ok(&part[first * POSTING_BYTES..end * POSTING_BYTES])
}

/// The first index of `0..count` where `before` is false (`before` holds for a prefix).
fn partition_point(count: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, count);
    while low < high {
        let middle = low + (high - low) / 2;
        if before(middle) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

/// Each posting of one encoded part, in order.
pub fn decode(part: &[u8]) -> Result<impl Iterator<Item = Posting> + '_, String> {
    if !part.len().is_multiple_of(POSTING_BYTES) {
        return Err(format!(
            "a postings part of {} bytes, not a multiple of {POSTING_BYTES}",
            part.len()
        ));
    }
    Ok(part.chunks_exact(POSTING_BYTES).map(|entry| {
        let person = u64::from_be_bytes(entry[..8].try_into().expect("8 bytes"));
        let flagged = u32::from_be_bytes(entry[8..].try_into().expect("4 bytes"));
        Posting {
            person,
            offset_ms: flagged & !BOT_FLAG,
            bot: flagged & BOT_FLAG != 0,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn posting() -> impl Strategy<Value = Posting> {
        (any::<u64>(), 0u32..86_400_000, any::<bool>()).prop_map(|(person, offset_ms, bot)| {
            Posting {
                person,
                offset_ms,
                bot,
            }
        })
    }

    proptest! {
        #[test]
        fn postings_round_trip_sorted_without_repeats(
            mut postings in prop::collection::vec(posting(), 0..200),
            part_bytes in 1usize..400,
        ) {
            postings.extend(postings.clone().into_iter().take(5));
            let parts = encode(postings.clone(), part_bytes);
            let mut decoded = Vec::new();
            for part in &parts {
                prop_assert!(part.len() <= part_bytes.max(POSTING_BYTES));
                decoded.extend(decode(part).unwrap());
            }
            postings.sort_unstable();
            postings.dedup();
            prop_assert_eq!(decoded, postings);
        }

        #[test]
        fn a_persons_span_holds_exactly_their_postings(
            postings in prop::collection::vec(posting(), 0..200),
            people in prop::collection::vec(0u64..8, 1..20),
            part_bytes in 1usize..400,
        ) {
            // Few people, so most have several postings, and one likely has none.
            let postings: Vec<Posting> = postings
                .into_iter()
                .zip(people.iter().cycle())
                .map(|(posting, person)| Posting { person: *person, ..posting })
                .collect();
            for part in encode(postings, part_bytes) {
                for person in 0..9 {
                    let span: Vec<Posting> = decode(span_of(&part, person).unwrap()).unwrap().collect();
                    let filtered: Vec<Posting> =
                        decode(&part).unwrap().filter(|posting| posting.person == person).collect();
                    prop_assert_eq!(span, filtered);
                }
            }
        }
    }

    #[test]
    fn a_persons_postings_dropped_change_only_their_part() {
        let people: Vec<Person> = (0..20_000)
            .map(|n| crate::people::person_key(&format!("p{n}")))
            .collect();
        let postings = |people: &[Person]| -> Vec<Posting> {
            let at = |person: &Person, offset_ms| Posting {
                person: *person,
                offset_ms,
                bot: false,
            };
            people
                .iter()
                .flat_map(|person| [at(person, 10), at(person, 20)])
                .collect()
        };
        let parts = encode(postings(&people), 256 * 1024);
        assert!(parts.len() > 5, "{} parts", parts.len());
        let gone = people[5_000..]
            .iter()
            .find(|person| *person % PEOPLE_PER_PART != 0)
            .unwrap();
        let left: Vec<Person> = people
            .iter()
            .copied()
            .filter(|person| person != gone)
            .collect();
        let after = encode(postings(&left), 256 * 1024);
        assert_eq!(after.len(), parts.len());
        let changed = after
            .iter()
            .zip(&parts)
            .filter(|(new, old)| new != old)
            .count();
        assert_eq!(changed, 1);
    }

    #[test]
    fn a_part_cut_mid_posting_is_refused() {
        assert!(decode(&[0u8; 13]).is_err());
        assert!(span_of(&[0u8; 13], 0).is_err());
    }
}
