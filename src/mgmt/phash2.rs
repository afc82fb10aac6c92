//! `erlang:phash2/2` for the term shapes RabbitMQ uses in AMQP field tables.
//!
//! This module owns one pure function, [`phash2`], equal to
//! `erlang:phash2(Term, 1 bsl 32)` (with that range the result is the raw
//! 32-bit hash), plus [`args_hash`], the base64url form RabbitMQ's
//! management plugin puts after the `~` of a binding's `properties_key`.
//! Nothing here allocates except a small work stack proportional to the
//! term's nesting depth (so deep nesting cannot overflow the call stack),
//! and no input makes it panic.
//!
//! Rules come from OTP 25's `make_hash2` (erts/emulator/beam/utils.c, later
//! moved to erl_term_hashing.c) and the atom-table hash (`atom_hash`,
//! hashpjw, in atom.c); the key format comes from RabbitMQ's
//! `rabbit_mgmt_format:args_hash/1` =
//! `rabbit_misc:base64url(<<(erlang:phash2(Args, 1 bsl 32)):32>>)`.

/// An Erlang term of the shapes RabbitMQ's field tables use.
///
/// A table is `List` of 3-`Tuple`s `{Name :: Binary, Type :: Atom, Value}`;
/// an array is `List` of `{Type, Value}` 2-tuples; a decimal is
/// `Tuple([Int(scale), Int(value)])`; void is `Atom("undefined")`.
/// `List` is always a proper list (ends in `[]`).
#[derive(Debug, Clone, PartialEq)]
pub enum Term<'a> {
    /// An atom, by its name (Unicode text; hashed as OTP stores it, UTF-8).
    Atom(&'a str),
    /// An integer; Erlang small or bignum, the hash does not distinguish.
    Int(i128),
    /// A float; `-0.0` hashes like `0.0`, as in OTP 25.
    Float(f64),
    /// A binary (a whole number of bytes).
    Binary(&'a [u8]),
    /// A proper list.
    List(Vec<Term<'a>>),
    /// A tuple.
    Tuple(Vec<Term<'a>>),
}

/// The golden-ratio constant and its multiples (mod 2^32) used by make_hash2.
const HCONST: u32 = 0x9e37_79b9;
const HCONST_2: u32 = 0x3c6e_f372;
const HCONST_3: u32 = 0xdaa6_6d2b;
const HCONST_4: u32 = 0x78dd_e6e4;
const HCONST_9: u32 = 0x8ff3_4781;
const HCONST_10: u32 = 0x2e2a_c13a;
const HCONST_11: u32 = 0xcc62_3af3;
const HCONST_12: u32 = 0x6a99_b4ac;
const HCONST_13: u32 = 0x08d1_2e65;
/// Tag number of `[]` in the emulator (`NIL_DEF`), hashed for a list's end.
const NIL_DEF: u32 = 2;
/// What make_hash2 returns for a bare `[]` (its hash-is-zero shortcut).
const NIL_AT_ZERO: u32 = 3_468_870_702;

/// Bob Jenkins' 96-bit mix, as in OTP's `MIX(a, b, c)`.
fn mix(mut a: u32, mut b: u32, mut c: u32) -> (u32, u32, u32) {
    a = a.wrapping_sub(b).wrapping_sub(c) ^ (c >> 13);
    b = b.wrapping_sub(c).wrapping_sub(a) ^ (a << 8);
    c = c.wrapping_sub(a).wrapping_sub(b) ^ (b >> 13);
    a = a.wrapping_sub(b).wrapping_sub(c) ^ (c >> 12);
    b = b.wrapping_sub(c).wrapping_sub(a) ^ (a << 16);
    c = c.wrapping_sub(a).wrapping_sub(b) ^ (b >> 5);
    a = a.wrapping_sub(b).wrapping_sub(c) ^ (c >> 3);
    b = b.wrapping_sub(c).wrapping_sub(a) ^ (a << 10);
    c = c.wrapping_sub(a).wrapping_sub(b) ^ (b >> 15);
    (a, b, c)
}

/// `UINT32_HASH_2(x, y, k)`: mix two words into the running hash.
fn hash2(hash: u32, x: u32, y: u32, k: u32) -> u32 {
    mix(k.wrapping_add(x), k.wrapping_add(y), hash).2
}

/// `UINT32_HASH(x, k)`.
fn hash1(hash: u32, x: u32, k: u32) -> u32 {
    hash2(hash, x, 0, k)
}

/// The atom table's hash of an atom name: hashpjw over the stored UTF-8
/// bytes, where a two-byte sequence for U+0080..U+00FF counts as one
/// latin-1 byte (OTP's "latin1 clutch"). Only the low 32 bits matter.
fn atom_hash(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let (mut h, mut i) = (0u32, 0usize);
    while i < bytes.len() {
        let mut v = bytes[i];
        i += 1;
        if i < bytes.len() && (v & 0xFE) == 0xC2 && (bytes[i] & 0xC0) == 0x80 {
            v = (v << 6) | (bytes[i] & 0x3F);
            i += 1;
        }
        h = (h << 4).wrapping_add(u32::from(v));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
            h ^= g;
        }
    }
    h
}

/// Jenkins' lookup2 block hash over `data`, seeded with `init`.
fn block_hash(data: &[u8], init: u32) -> u32 {
    let word = |k: &[u8]| u32::from_le_bytes([k[0], k[1], k[2], k[3]]);
    let (mut a, mut b, mut c) = (HCONST, HCONST, init);
    let mut chunks = data.chunks_exact(12);
    for k in &mut chunks {
        a = a.wrapping_add(word(&k[0..4]));
        b = b.wrapping_add(word(&k[4..8]));
        c = c.wrapping_add(word(&k[8..12]));
        (a, b, c) = mix(a, b, c);
    }
    // OTP truncates the length to 32 bits ("compatible with old versions").
    c = c.wrapping_add(data.len() as u32);
    let mut tail = [0u8; 12];
    let rest = chunks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    a = a.wrapping_add(word(&tail[0..4]));
    b = b.wrapping_add(word(&tail[4..8]));
    // The low byte of `c` is reserved for the length: tail bytes 8..11 go
    // into its upper three bytes.
    c = c.wrapping_add(u32::from_le_bytes([0, tail[8], tail[9], tail[10]]));
    mix(a, b, c).2
}

/// Hash an integer. Values in the signed 28-bit range use the small path
/// (a negative one is mixed twice, first as its magnitude); all others (64-bit smalls and bignums alike) hash the magnitude as
/// 64-bit little-endian digits, each split low/high, with a sign constant.
fn hash_int(hash: u32, v: i128) -> u32 {
    if (-(1i128 << 27)..(1i128 << 27)).contains(&v) {
        let y = v as i32;
        let mut h = hash;
        if y < 0 {
            h = hash1(h, y.unsigned_abs(), HCONST);
        }
        return hash1(h, y as u32, HCONST);
    }
    let k = if v < 0 { HCONST_10 } else { HCONST_11 };
    let mag = v.unsigned_abs();
    let mut h = hash2(hash, mag as u32, (mag >> 32) as u32, k);
    if mag >> 64 != 0 {
        h = hash2(h, (mag >> 64) as u32, (mag >> 96) as u32, k);
    }
    h
}

/// Pending work: a term to hash, or the unvisited rest of a list (its tail).
enum Work<'t, 'a> {
    Term(&'t Term<'a>),
    Rest(&'t [Term<'a>]),
}

/// `erlang:phash2(T, 1 bsl 32)` under OTP 25 on a 64-bit emulator.
pub fn phash2(t: &Term) -> u32 {
    let mut hash: u32 = 0;
    let mut stack: Vec<Work> = Vec::new();
    let mut next = Some(Work::Term(t));
    while let Some(work) = next.take().or_else(|| stack.pop()) {
        let term = match work {
            Work::Term(term) => term,
            Work::Rest(items) => {
                hash = hash_list(hash, items, &mut stack, &mut next);
                continue;
            }
        };
        match term {
            Term::Atom(name) => {
                let hv = atom_hash(name);
                hash = if hash == 0 {
                    hv
                } else {
                    hash1(hash, hv, HCONST_3)
                };
            }
            Term::Int(v) => hash = hash_int(hash, *v),
            Term::Float(f) => {
                let bits = if *f == 0.0 { 0 } else { f.to_bits() };
                hash = hash2(hash, (bits >> 32) as u32, bits as u32, HCONST_12);
            }
            Term::Binary(b) => {
                let con = HCONST_13.wrapping_add(hash);
                hash = if b.is_empty() {
                    con
                } else {
                    block_hash(b, con)
                };
            }
            Term::Tuple(elems) => {
                hash = hash1(hash, elems.len() as u32, HCONST_9);
                stack.extend(elems.iter().skip(1).rev().map(Work::Term));
                next = elems.first().map(Work::Term);
            }
            Term::List(items) => hash = hash_list(hash, items, &mut stack, &mut next),
        }
    }
    hash
}

/// Hash the list `items ++ []` as make_hash2 walks it: a leading run of
/// byte-valued integers (0..=255) is packed big-endian four at a time; the
/// first other element becomes the next term, its tail is pushed; an empty
/// remainder hashes as `[]`.
fn hash_list<'t, 'a>(
    mut hash: u32,
    items: &'t [Term<'a>],
    stack: &mut Vec<Work<'t, 'a>>,
    next: &mut Option<Work<'t, 'a>>,
) -> u32 {
    let (mut packed, mut count, mut i) = (0u32, 0u32, 0usize);
    while let Some(Term::Int(b @ 0..=255)) = items.get(i) {
        (packed, count, i) = ((packed << 8) | *b as u32, count + 1, i + 1);
        if count == 4 {
            (hash, packed, count) = (hash1(hash, packed, HCONST_4), 0, 0);
        }
    }
    if count > 0 {
        hash = hash1(hash, packed, HCONST_4);
    }
    match items.get(i) {
        Some(head) => {
            stack.push(Work::Rest(&items[i + 1..]));
            *next = Some(Work::Term(head));
            hash
        }
        None if hash == 0 => NIL_AT_ZERO,
        None => hash1(hash, NIL_DEF, HCONST_2),
    }
}

/// RabbitMQ's `rabbit_mgmt_format:args_hash/1`: the 4 big-endian bytes of
/// `phash2(args)` in base64 with `+`→`-`, `/`→`_` and `=` padding dropped
/// (always 6 characters).
pub fn args_hash(args: &Term) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let v = u64::from(phash2(args)) << 4; // 32 bits + 4 zero bits = 6 digits
    (0..6)
        .map(|i| ALPHABET[((v >> (30 - 6 * i)) & 63) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Term::{self, *};
    use super::{args_hash, phash2};

    fn l<'a>(v: Vec<Term<'a>>) -> Term<'a> {
        List(v)
    }
    fn t<'a>(v: Vec<Term<'a>>) -> Term<'a> {
        Tuple(v)
    }
    fn bin(s: &str) -> Term<'_> {
        Binary(s.as_bytes())
    }
    fn row<'a>(k: &'a str, ty: &'a str, v: Term<'a>) -> Term<'a> {
        t(vec![bin(k), Atom(ty), v])
    }
    fn check(cases: &[(Term, u32)]) {
        for (term, want) in cases {
            assert_eq!(phash2(term), *want, "{term:?}");
        }
    }

    /// Reference values from `erlang:phash2(T, 1 bsl 32)`, OTP 25, x86_64.
    #[test]
    fn scalars_match_otp25() {
        let ints = concat!(
            "0 1 -1 255 256 134217727 134217728 -134217728 -134217729 576460752303423487 ",
            "576460752303423488 -576460752303423488 -576460752303423489 4611686018427387904 ",
            "-9223372036854775808 9223372036854775807 18446744073709551616 ",
            "-18446744073709551621 1267650600228229401496703205376 4294967296 -4294967296"
        );
        let want = [
            3175731469, 539485162, 1117813597, 715823293, 3929335767, 4273352567, 2562491755,
            874979335, 1418916782, 1638133000, 2442888721, 2316875190, 2855034599, 834544497,
            1736826119, 2712534173, 2519041713, 2798261862, 528873168, 2108323275, 2586067094,
        ];
        assert_eq!(ints.split(' ').count(), want.len());
        for (v, w) in ints.split(' ').zip(want) {
            assert_eq!(phash2(&Int(v.parse().unwrap())), w, "{v}");
        }
        let atoms = "true false longstr signedint undefined caf\u{e9} \u{4e2d}";
        let want = [
            506293, 7111573, 56945346, 239851428, 180132084, 432201, 61485,
        ];
        assert_eq!(atoms.split(' ').count(), want.len());
        for (a, w) in atoms.split(' ').zip(want) {
            assert_eq!(phash2(&Atom(a)), w, "{a}");
        }
        let long = "a_rather_long_atom_name_for_hashing_purposes_xyz";
        assert_eq!(phash2(&Atom(long)), 220225386);
        let floats = [1.5, 0.0, -0.0, -2.25, 1.0e300, std::f64::consts::PI];
        let want = [
            2023646235, 423528920, 423528920, 2254282282, 387524106, 764465415,
        ];
        for (f, w) in floats.iter().zip(want) {
            assert_eq!(phash2(&Float(*f)), w, "{f}");
        }
        let hundred: Vec<u8> = (0..100).collect();
        assert_eq!(phash2(&l(vec![])), 3468870702);
        assert_eq!(phash2(&Binary(b"")), 147926629);
        assert_eq!(phash2(&Binary(&hundred)), 3204411151);
        assert_eq!(phash2(&Binary("h\u{e9}llo".as_bytes())), 3823456971);
    }

    #[test]
    fn binary_prefixes_1_to_20_match_otp25() {
        let want: [u32; 20] = [
            1589197455, 261815530, 1306188027, 3219329547, 504217779, 1818048662, 731689103,
            3561888030, 2087839144, 187868928, 96993671, 686521495, 3501102500, 445108337,
            3209565879, 3491374364, 1536467649, 3764977431, 1837953597, 1672357388,
        ];
        let all = b"abcdefghijklmnopqrst";
        for (n, w) in want.iter().enumerate() {
            assert_eq!(phash2(&Binary(&all[..n + 1])), *w, "length {}", n + 1);
        }
    }

    #[test]
    fn tuples_and_lists_match_otp25() {
        let ints = |v: &[i128]| l(v.iter().map(|&i| Int(i)).collect());
        let nested = l(vec![l(vec![Int(1), l(vec![Int(2), ints(&[3])])])]);
        check(&[
            (t(vec![]), 221703996),
            (t(vec![Atom("a")]), 2853905094),
            (t(vec![Atom("a"), Int(1), bin("x")]), 246908673),
            (t(vec![Int(2), Int(12345)]), 4102124504),
            (ints(&[1, 2, 3]), 4186538188),
            (ints(&[104, 101, 108, 108, 111]), 753008767),
            (ints(&[1, 2, 3, 4, 5]), 3824152778),
            (ints(&[256]), 1684221134),
            (ints(&[1, 256, 2]), 2041018903),
            (l(vec![Atom("a"), Atom("b")]), 3632954310),
            (l(vec![l(vec![])]), 499070068),
            (l(vec![l(vec![]), l(vec![])]), 67164138),
            (l(vec![t(vec![Atom("a"), Atom("b")])]), 362836710),
            (nested, 852816852),
        ]);
    }

    #[test]
    fn binding_args_match_otp25() {
        let one = |k, ty, v| l(vec![row(k, ty, v)]);
        let tv = |ty, v| t(vec![Atom(ty), v]);
        let xmatch = vec![
            row("x-match", "longstr", bin("all")),
            row("format", "longstr", bin("pdf")),
        ];
        let mixed = vec![
            row("x-match", "longstr", bin("any")),
            row("k", "long", Int(i64::MIN as i128)),
            row("e", "array", l(vec![])),
            row("tb", "table", l(vec![])),
        ];
        let arr = l(vec![tv("longstr", bin("x")), tv("signedint", Int(1))]);
        check(&[
            (l(xmatch), 2795751680),
            (one("n", "signedint", Int(42)), 302685411),
            (one("b", "bool", Atom("true")), 4274269512),
            (one("t", "table", one("a", "longstr", bin("b"))), 2880845201),
            (one("arr", "array", arr), 3052861422),
            (one("v", "void", Atom("undefined")), 3233508068),
            (one("d", "decimal", t(vec![Int(2), Int(314)])), 1625245386),
            (one("f", "double", Float(1.5)), 2086471376),
            (one("big", "long", Int(1 << 60)), 3499558148),
            (one("neg", "long", Int(-5)), 1013403491),
            (one("ts", "timestamp", Int(1_700_000_000)), 3367757359),
            (l(mixed), 1774454778),
        ]);
    }

    /// Reference strings from `rabbit_misc:base64url(<<H:32>>)` semantics.
    #[test]
    fn args_hash_matches_rabbit_base64url() {
        let xmatch = l(vec![
            row("x-match", "longstr", bin("all")),
            row("format", "longstr", bin("pdf")),
        ]);
        assert_eq!(args_hash(&xmatch), "pqPJAA");
        assert_eq!(args_hash(&l(vec![])), "zsLELg");
        let n42 = l(vec![row("n", "signedint", Int(42))]);
        assert_eq!(args_hash(&n42), "Egqc4w");
        assert_eq!(args_hash(&Float(1.5)), "eJ5kGw");
        assert_eq!(args_hash(&Atom("a")), "AAAAYQ");
    }

    #[test]
    fn deep_nesting_and_odd_floats_do_not_panic() {
        let mut term = l(vec![]);
        for _ in 0..100_000 {
            term = l(vec![term]);
        }
        let _ = phash2(&term);
        let _ = phash2(&Float(f64::NAN));
        let _ = phash2(&Float(f64::INFINITY));
        let _ = phash2(&Int(i128::MIN));
        std::mem::forget(term); // dropping 100k nested Vecs recurses
    }
}
