//! Token validation cost: a bearer token checked against a cached key, as
//! every request pays it, beside the bare signature verification it contains.
//!
//! Run with `cargo xtask bench auth` (or `cargo bench -p cpis --bench auth`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use cpis_core::identity::development_identity;
use cpis_domain::LaCode;
use serde_json::json;

fn main() {
    // As the `cpis` binary does before anything else.
    cpis::without_huge_pages().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let identity =
        development_identity("http://127.0.0.1:8080", LaCode::parse("E09000007").unwrap())
            .await
            .unwrap();
    let persona = cpis_auth::personas(LaCode::parse("E09000007").unwrap())
        .into_iter()
        .find(|p| p.name == "ed-clinician")
        .unwrap();
    let token = identity
        .own
        .issue_persona(&persona, "cpis", None, time::OffsetDateTime::now_utc())
        .unwrap();
    let rounds = 20_000;

    // Reference: the ES256 signature check alone, no claims, no mapping.
    let key = identity.signing_key().decoding_key().clone();
    let mut bare = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    bare.validate_aud = false;
    bare.validate_exp = false;
    bare.required_spec_claims.clear();
    let started = Instant::now();
    for _ in 0..rounds {
        jsonwebtoken::decode::<serde_json::Value>(&token, &key, &bare).unwrap();
    }
    let bare_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);

    // First sight of each token: full verification (fresh tokens each time).
    let fresh: Vec<String> = (0..2_000)
        .map(|_| {
            identity
                .own
                .issue_persona(&persona, "cpis", None, time::OffsetDateTime::now_utc())
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    for token in &fresh {
        identity.validator.validate(token).await.unwrap();
    }
    let first_us = started.elapsed().as_secs_f64() * 1e6 / fresh.len() as f64;

    // The same token again, as a client sends it with every request.
    let started = Instant::now();
    for _ in 0..rounds {
        identity.validator.validate(&token).await.unwrap();
    }
    let again_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    let round = |us: f64| (us * 100.0).round() / 100.0;
    println!("# token validation on one core");
    println!(
        "{}",
        json!({
            "es256_signature_only_us": round(bare_us),
            "first_sight_full_validation_us": round(first_us),
            "repeat_validation_us": round(again_us),
            "ratio_first_sight_to_signature_only": round(first_us / bare_us),
            "ratio_repeat_to_signature_only": (again_us / bare_us * 1000.0).round() / 1000.0,
        })
    );
}
