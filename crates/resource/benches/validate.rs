//! Validations per second in JWKS mode: an RS256 access token signed in-process, keys
//! served by the test suite's fake issuer on 127.0.0.1:0 and fetched once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "bench harness")]

#[allow(dead_code)]
#[path = "../tests/it/support.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_resource::JwksValidator;

fn validate(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let key = support::Key::rsa("bench");
    let (validator, token) = rt.block_on(async {
        let issuer = support::FakeIssuer::start(&[&key]).await;
        let validator = JwksValidator::builder(&issuer.url)
            .audience("bench-api")
            .build()
            .await
            .unwrap();
        let token = key.sign(&support::claims(&issuer.url, "bench-api", SystemTime::now()));
        (validator, token)
    });
    rt.block_on(validator.validate(&token)).unwrap();

    let mut group = c.benchmark_group("jwks");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("validate_rs256", |b| {
        b.iter(|| rt.block_on(validator.validate(black_box(&token))).unwrap())
    });
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
