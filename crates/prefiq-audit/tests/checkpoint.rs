//! Signed checkpoints: what `sign` writes `verify` reads back, and a changed byte, another
//! key or another log is refused.
#![allow(clippy::unwrap_used)]

use prefiq_audit::checkpoint::{self, Checkpoint, CheckpointError};

fn key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

fn sample() -> Checkpoint {
    Checkpoint {
        origin: "codexion.test/audit".into(),
        size: 42,
        root: [7; 32],
        time_ms: 1_764_590_000_000,
    }
}

#[test]
fn a_signed_checkpoint_reads_back() {
    let text = checkpoint::sign(&sample(), &key(1));
    assert!(text.starts_with("codexion.test/audit\n42\n"), "{text}");
    assert_eq!(
        checkpoint::verify(&text, "codexion.test/audit", &key(1).verifying_key()),
        Ok(sample())
    );
}

#[test]
fn every_changed_byte_is_refused() {
    let text = checkpoint::sign(&sample(), &key(1));
    let bytes = text.as_bytes();
    for i in 0..bytes.len() {
        let mut changed = bytes.to_vec();
        changed[i] ^= 0x01;
        let Ok(changed) = String::from_utf8(changed) else {
            continue;
        };
        assert!(
            checkpoint::verify(&changed, "codexion.test/audit", &key(1).verifying_key()).is_err()
                || changed.trim_end() == text.trim_end(),
            "byte {i} changed and still verified: {changed:?}"
        );
    }
}

#[test]
fn other_keys_and_logs_are_refused() {
    let text = checkpoint::sign(&sample(), &key(1));
    assert_eq!(
        checkpoint::verify(&text, "codexion.test/audit", &key(2).verifying_key()),
        Err(CheckpointError::UnknownKey)
    );
    assert_eq!(
        checkpoint::verify(&text, "another/log", &key(1).verifying_key()),
        Err(CheckpointError::UnknownKey)
    );
    assert!(matches!(
        checkpoint::verify("nonsense", "codexion.test/audit", &key(1).verifying_key()),
        Err(CheckpointError::Malformed(_))
    ));
}
