//! Topic matching, differentially: the trie (`routing::topic`) against a
//! direct recursive reading of the rules (`*` one word, `#` zero or more),
//! on patterns and keys drawn from a small alphabet so wildcards collide.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren::routing::topic::TopicTrie;

fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

fn naive(p: &[&str], k: &[&str]) -> bool {
    match p.split_first() {
        None => k.is_empty(),
        Some((&"#", rest)) => (0..=k.len()).any(|i| naive(rest, &k[i..])),
        Some((&"*", rest)) => !k.is_empty() && naive(rest, &k[1..]),
        Some((w, rest)) => k.first() == Some(w) && naive(rest, &k[1..]),
    }
}

fn text(bytes: &[u8]) -> String {
    let alphabet = ["a", "b", "*", "#"];
    bytes
        .iter()
        .take(8)
        .map(|b| alphabet[(*b % 4) as usize])
        .collect::<Vec<_>>()
        .join(".")
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == 0xff) else {
        return;
    };
    let (patterns, key) = data.split_at(split);
    let key = text(&key[1..]).replace(['*', '#'], "c");
    let mut trie = TopicTrie::new();
    let patterns: Vec<String> = patterns.chunks(8).map(text).collect();
    for (i, p) in patterns.iter().enumerate() {
        trie.insert(p, i);
    }
    let mut got = Vec::new();
    trie.matches(&key, &mut got);
    got.sort_unstable();
    got.dedup();
    let want: Vec<usize> = (0..patterns.len())
        .filter(|i| naive(&words(&patterns[*i]), &words(&key)))
        .collect();
    assert_eq!(got, want, "patterns {patterns:?} key {key:?}");
});
