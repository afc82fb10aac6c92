//! Topic exchange matching: a trie over dot-separated words, with `*`
//! (exactly one word) and `#` (zero or more words).
//!
//! Lookups walk the routing key once per trie branch that can match, so the
//! cost grows with the key's length and the number of wildcard branches, not
//! with the number of bindings. A `#` is walked as a state that consumes one
//! word at a time, and every (node, word index) state is visited at most
//! once per lookup, so a lookup costs at most O(trie nodes x key words) even
//! for adversarial patterns such as `#.#.#....z` (no backtracking blow-up:
//! any user with bind rights could otherwise stall a shard). Tries without
//! `#` never revisit a state and skip the bookkeeping. Never allocates per
//! lookup except the output and, with `#` bindings, the visited set.

use std::collections::HashMap;

/// An empty key or pattern is zero words (as in RabbitMQ), not one
/// empty word: "" matches "#" and "", never "*".
fn words(s: &str) -> impl Iterator<Item = &str> {
    let empty = s.is_empty();
    s.split('.').filter(move |_| !empty)
}

/// A topic exchange's bindings: a trie over pattern words, with the
/// destinations `D` bound at each pattern's end node.
#[derive(Default, Debug)]
pub struct TopicTrie<D> {
    root: Node<D>,
    len: usize,
    /// `#` nodes in the trie (lookups memoise states only when non-zero).
    hashes: usize,
}

#[derive(Debug)]
struct Node<D> {
    words: HashMap<String, Node<D>>,
    star: Option<Box<Node<D>>>,
    hash: Option<Box<Node<D>>>,
    dests: Vec<D>,
}

impl<D> Default for Node<D> {
    fn default() -> Self {
        Node {
            words: HashMap::new(),
            star: None,
            hash: None,
            dests: Vec::new(),
        }
    }
}

impl<D> Node<D> {
    fn is_empty(&self) -> bool {
        self.words.is_empty() && self.star.is_none() && self.hash.is_none() && self.dests.is_empty()
    }
}

impl<D: PartialEq + Clone> TopicTrie<D> {
    /// An empty trie.
    pub fn new() -> Self {
        TopicTrie {
            root: Node::default(),
            len: 0,
            hashes: 0,
        }
    }

    /// Bindings held ((pattern, destination) pairs).
    pub fn len(&self) -> usize {
        self.len
    }

    /// No bindings.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add a binding; returns false if it already existed.
    pub fn insert(&mut self, pattern: &str, dest: D) -> bool {
        let mut node = &mut self.root;
        for w in words(pattern) {
            node = match w {
                "*" => node.star.get_or_insert_with(Default::default),
                "#" => {
                    if node.hash.is_none() {
                        self.hashes += 1;
                    }
                    node.hash.get_or_insert_with(Default::default)
                }
                w => node.words.entry(w.to_string()).or_default(),
            };
        }
        if node.dests.contains(&dest) {
            return false;
        }
        node.dests.push(dest);
        self.len += 1;
        true
    }

    /// Remove a binding; returns false if it was not there.
    pub fn remove(&mut self, pattern: &str, dest: &D) -> bool {
        let words: Vec<&str> = words(pattern).collect();
        let mut pruned_hashes = 0;
        let removed = Self::remove_at(&mut self.root, &words, dest, &mut pruned_hashes);
        if removed {
            self.len -= 1;
        }
        self.hashes -= pruned_hashes;
        removed
    }

    fn remove_at(node: &mut Node<D>, words: &[&str], dest: &D, pruned_hashes: &mut usize) -> bool {
        let Some((first, rest)) = words.split_first() else {
            let before = node.dests.len();
            node.dests.retain(|d| d != dest);
            return node.dests.len() != before;
        };
        let child = match *first {
            "*" => node.star.as_deref_mut(),
            "#" => node.hash.as_deref_mut(),
            w => node.words.get_mut(w),
        };
        let Some(child) = child else { return false };
        let removed = Self::remove_at(child, rest, dest, pruned_hashes);
        if removed && child.is_empty() {
            match *first {
                "*" => node.star = None,
                "#" => {
                    node.hash = None;
                    *pruned_hashes += 1;
                }
                w => {
                    node.words.remove(w);
                }
            }
        }
        removed
    }

    /// Every destination whose pattern matches `key` (may contain repeats;
    /// the caller de-duplicates across exchanges anyway).
    pub fn matches(&self, key: &str, out: &mut Vec<D>) {
        let words: Vec<&str> = words(key).collect();
        let mut seen = Visited::new(self.hashes > 0);
        Self::walk(&self.root, 0, &words, &mut seen, out);
    }

    /// `node` reached with `words[..i]` consumed.
    fn walk(node: &Node<D>, i: usize, words: &[&str], seen: &mut Visited, out: &mut Vec<D>) {
        if !seen.first_visit(node as *const Node<D> as usize, i, false) {
            return;
        }
        if let Some(h) = &node.hash {
            Self::walk_hash(h, i, words, seen, out);
        }
        let Some(first) = words.get(i) else {
            out.extend(node.dests.iter().cloned());
            return;
        };
        if let Some(c) = node.words.get(*first) {
            Self::walk(c, i + 1, words, seen, out);
        }
        if let Some(s) = &node.star {
            Self::walk(s, i + 1, words, seen, out);
        }
    }

    /// Inside a `#` whose children are `h`, with `words[..i]` consumed: the
    /// `#` stops here (walk `h`) or swallows one more word.
    fn walk_hash(h: &Node<D>, i: usize, words: &[&str], seen: &mut Visited, out: &mut Vec<D>) {
        let mut i = i;
        loop {
            if !seen.first_visit(h as *const Node<D> as usize, i, true) {
                return;
            }
            Self::walk(h, i, words, seen, out);
            if i >= words.len() {
                return;
            }
            i += 1;
        }
    }
}

/// States already walked in one lookup: (node address, words consumed,
/// inside-`#` flag). Only kept when the trie has `#` nodes; a small linear
/// list first, a hash set once it grows.
struct Visited {
    on: bool,
    small: Vec<(usize, usize, bool)>,
    big: Option<std::collections::HashSet<(usize, usize, bool)>>,
}

impl Visited {
    fn new(on: bool) -> Self {
        Visited {
            on,
            small: Vec::new(),
            big: None,
        }
    }

    fn first_visit(&mut self, node: usize, i: usize, hash: bool) -> bool {
        if !self.on {
            return true;
        }
        let k = (node, i, hash);
        if let Some(big) = &mut self.big {
            return big.insert(k);
        }
        if self.small.contains(&k) {
            return false;
        }
        self.small.push(k);
        if self.small.len() > 32 {
            self.big = Some(self.small.drain(..).collect());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(t: &TopicTrie<u32>, key: &str) -> Vec<u32> {
        let mut v = Vec::new();
        t.matches(key, &mut v);
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn star_matches_exactly_one_word_and_hash_zero_or_more() {
        let mut t = TopicTrie::new();
        t.insert("*.orange.*", 1);
        t.insert("*.*.rabbit", 2);
        t.insert("lazy.#", 2);
        t.insert("#", 3);
        assert_eq!(m(&t, "quick.orange.rabbit"), vec![1, 2, 3]);
        assert_eq!(m(&t, "lazy.orange.elephant"), vec![1, 2, 3]);
        assert_eq!(m(&t, "quick.orange.fox"), vec![1, 3]);
        assert_eq!(m(&t, "lazy.brown.fox"), vec![2, 3]);
        assert_eq!(m(&t, "lazy"), vec![2, 3]);
        assert_eq!(m(&t, "quick.orange.male.rabbit"), vec![3]);
        assert_eq!(m(&t, "orange"), vec![3]);
    }

    #[test]
    fn hash_in_the_middle_and_empty_words() {
        let mut t = TopicTrie::new();
        t.insert("a.#.z", 1);
        t.insert("", 2);
        t.insert("a..b", 4);
        assert_eq!(m(&t, "a.z"), vec![1]);
        assert_eq!(m(&t, "a.b.c.z"), vec![1]);
        assert_eq!(m(&t, ""), vec![2]);
        assert_eq!(m(&t, "a..b"), vec![4]);
    }

    #[test]
    fn adversarial_hash_patterns_match_in_polynomial_time() {
        // 24 '#' words then 'z', against a 120-word key: exponential for a
        // backtracking matcher, a few thousand states here.
        let mut t = TopicTrie::new();
        let pattern = format!("{}z", "#.".repeat(24));
        t.insert(pattern.as_str(), 1);
        t.insert("#.a.#.a.#.a.#.a.#.a.#.b", 2);
        let key = vec!["a"; 120].join(".");
        assert_eq!(m(&t, &key), Vec::<u32>::new());
        assert_eq!(m(&t, &format!("{key}.z")), vec![1]);
        assert_eq!(m(&t, &format!("{key}.b")), vec![2]);
        assert!(t.remove(&pattern, &1));
        assert!(t.remove("#.a.#.a.#.a.#.a.#.a.#.b", &2));
        assert_eq!(t.hashes, 0, "pruned '#' nodes are counted out");
    }

    #[test]
    fn remove_prunes_and_reports() {
        let mut t = TopicTrie::new();
        assert!(t.insert("a.*", 1));
        assert!(!t.insert("a.*", 1));
        assert!(t.remove("a.*", &1));
        assert!(!t.remove("a.*", &1));
        assert!(t.is_empty());
        assert_eq!(m(&t, "a.b"), Vec::<u32>::new());
    }
}
