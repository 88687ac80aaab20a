//! The Merkle tree against the RFC 6962/9162 test vectors of transparency-dev/merkle
//! (testonly/constants.go, proof/verify_test.go, testonly/reference_test.go), and its
//! invariants on random trees: every inclusion and consistency proof the tree makes
//! verifies, and a proof checked against anything else does not.
#![allow(clippy::unwrap_used)]

use prefiq_audit::merkle::{
    Frontier, Hash, consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root,
    verify_consistency, verify_inclusion,
};
use proptest::prelude::*;

fn hd(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn h(hex: &str) -> Hash {
    hd(hex).try_into().unwrap()
}

/// testonly.LeafInputs().
fn leaves() -> Vec<Hash> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|l| leaf_hash(&hd(l)))
    .collect()
}

/// testonly.RootHashes(), by tree size.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

#[test]
fn hashing_matches_rfc6962_vectors() {
    assert_eq!(empty_root(), h(ROOTS[0]));
    assert_eq!(
        leaf_hash(b"L123456"),
        h("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    );
    // HashChildren("N123", "N456") hashes the two byte strings, not 32-byte hashes.
    let mut node = vec![1u8];
    node.extend_from_slice(b"N123N456");
    assert_eq!(
        <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(&node)),
        h("aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb")
    );
}

#[test]
fn roots_match_the_reference_for_every_size() {
    let leaves = leaves();
    let mut frontier = Frontier::new();
    assert_eq!(frontier.root(), h(ROOTS[0]));
    for size in 1..=leaves.len() {
        assert_eq!(root(&leaves[..size]), h(ROOTS[size]), "size {size}");
        frontier.push(leaves[size - 1]);
        assert_eq!(frontier.root(), h(ROOTS[size]), "frontier at size {size}");
    }
}

/// Leaf `i` of the larger golden trees is `u16le(i)` (compact/range_test.go).
fn golden_leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&[(i & 0xff) as u8, ((i >> 8) & 0xff) as u8]))
        .collect()
}

#[test]
fn larger_golden_roots() {
    use base64::Engine as _;
    for (size, want) in [
        (10, "VjWMPSYNtCuCNlF/RLnQy6HcwSk6CIipfxm+hettA+4="),
        (15, "j4SulYmocFuxdeyp12xXCIgK6PekBcxzAIj4zbQzNEI="),
        (16, "c+4Uc6BCMOZf/v3NZK1kqTUJe+bBoFtOhP+P3SayKRE="),
        (100, "dUh9hYH88p0CMoHkdr1wC2szbhcLAXOejWpINIooKUY="),
        (255, "SmdsuKUqiod3RX2jyF2M6JnbdE4QuTwwipfAowI4/i0="),
    ] {
        let want: Hash = base64::engine::general_purpose::STANDARD
            .decode(want)
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(root(&golden_leaves(size)), want, "size {size}");
    }
}

#[test]
fn inclusion_proofs_match_the_reference() {
    let leaves = leaves();
    let cases: &[(usize, usize, &[&str])] = &[
        (0, 1, &[]),
        (
            0,
            2,
            &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
        ),
        (
            1,
            2,
            &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    for (index, size, want) in cases {
        let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
        let proof = inclusion_proof(&leaves[..*size], *index).unwrap();
        assert_eq!(proof, want, "index {index} size {size}");
        assert!(verify_inclusion(
            &leaves[*index],
            *index as u64,
            *size as u64,
            &proof,
            &h(ROOTS[*size])
        ));
    }
}

#[test]
fn consistency_proofs_match_the_reference() {
    let leaves = leaves();
    let cases: &[(usize, usize, &[&str])] = &[
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (old, new, want) in cases {
        let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
        let proof = consistency_proof(&leaves[..*new], *old).unwrap();
        assert_eq!(proof, want, "{old} -> {new}");
        assert!(verify_consistency(
            *old as u64,
            *new as u64,
            &h(ROOTS[*old]),
            &h(ROOTS[*new]),
            &proof
        ));
    }
}

/// The corruptions of transparency-dev's `corruptInclusionProof`: each must fail.
#[test]
fn corrupted_inclusion_proofs_fail() {
    let leaves = leaves();
    let some: Hash = h("abacaba000000000000000000000000000000000000000000060061e00123456");
    for size in 1..=leaves.len() {
        let root = root(&leaves[..size]);
        for index in 0..size {
            let proof = inclusion_proof(&leaves[..size], index).unwrap();
            let (i, n) = (index as u64, size as u64);
            let leaf = leaves[index];
            assert!(verify_inclusion(&leaf, i, n, &proof, &root));
            let mut bad: Vec<(String, bool)> = vec![
                (
                    "index - 1".into(),
                    i > 0 && verify_inclusion(&leaf, i - 1, n, &proof, &root),
                ),
                (
                    "index + 1".into(),
                    verify_inclusion(&leaf, i + 1, n, &proof, &root),
                ),
                (
                    "index ^ 2".into(),
                    (i ^ 2) != i && verify_inclusion(&leaf, i ^ 2, n, &proof, &root),
                ),
                (
                    "size * 2".into(),
                    verify_inclusion(&leaf, i, n * 2, &proof, &root),
                ),
                (
                    "size / 2".into(),
                    n / 2 != n && verify_inclusion(&leaf, i, n / 2, &proof, &root),
                ),
                (
                    "wrong leaf".into(),
                    verify_inclusion(&leaf_hash(b"WrongLeaf"), i, n, &proof, &root),
                ),
                (
                    "empty root".into(),
                    verify_inclusion(&leaf, i, n, &proof, &empty_root()),
                ),
                (
                    "random root".into(),
                    verify_inclusion(&leaf, i, n, &proof, &some),
                ),
                (
                    "trailing root".into(),
                    verify_inclusion(&leaf, i, n, &[proof.clone(), vec![root]].concat(), &root),
                ),
                (
                    "preceding root".into(),
                    verify_inclusion(&leaf, i, n, &[vec![root], proof.clone()].concat(), &root),
                ),
            ];
            for k in 0..proof.len() {
                let mut flipped = proof.clone();
                flipped[k][0] ^= 8;
                bad.push((
                    format!("flipped proof[{k}]"),
                    verify_inclusion(&leaf, i, n, &flipped, &root),
                ));
            }
            if !proof.is_empty() {
                bad.push((
                    "removed component".into(),
                    verify_inclusion(&leaf, i, n, &proof[..proof.len() - 1], &root),
                ));
            }
            if proof.len() > 1 {
                let inserted = [vec![proof[0], some], proof[1..].to_vec()].concat();
                bad.push((
                    "inserted component".into(),
                    verify_inclusion(&leaf, i, n, &inserted, &root),
                ));
            }
            for (what, verified) in bad {
                assert!(!verified, "{what} verified (index {index}, size {size})");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every proof the tree makes verifies, and against a changed leaf or root, or the
    /// wrong sizes, it does not.
    #[test]
    fn proofs_of_random_trees(n in 1usize..300, index_seed in any::<usize>(), old_seed in any::<usize>(), flip in any::<u8>()) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let head = root(&leaves);
        let mut frontier = Frontier::new();
        for leaf in &leaves {
            frontier.push(*leaf);
        }
        prop_assert_eq!(frontier.root(), head);
        let index = index_seed % n;
        let proof = inclusion_proof(&leaves, index).unwrap();
        prop_assert!(verify_inclusion(&leaves[index], index as u64, n as u64, &proof, &head));
        let mut other = leaves[index];
        other[usize::from(flip) % 32] ^= 1;
        prop_assert!(!verify_inclusion(&other, index as u64, n as u64, &proof, &head));
        let old = old_seed % n + 1;
        let old_head = root(&leaves[..old]);
        let consistency = consistency_proof(&leaves, old).unwrap();
        prop_assert!(verify_consistency(old as u64, n as u64, &old_head, &head, &consistency));
        let mut wrong = old_head;
        wrong[usize::from(flip) % 32] ^= 1;
        prop_assert!(!verify_consistency(old as u64, n as u64, &wrong, &head, &consistency));
        if old < n {
            // A rewritten history (any changed leaf before `old`) is inconsistent.
            let mut rewritten = leaves.clone();
            rewritten[index % old][0] ^= 1;
            prop_assert!(!verify_consistency(old as u64, n as u64, &old_head, &root(&rewritten), &consistency));
            prop_assert!(!verify_consistency(old as u64 + 1, n as u64, &old_head, &head, &consistency));
        }
        let _ = node_hash(&head, &head);
    }
}
