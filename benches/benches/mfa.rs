//! Criterion bench of MFA code verification: the authority's window match
//! (every candidate step computed, constant-time comparison), which runs
//! inside the store's writer for every guarded operation.

use criterion::{Criterion, criterion_group, criterion_main};
use wormbox_mfa::device::match_window;
use wormbox_token::{OtpParams, Seed, Totp};

fn verification(c: &mut Criterion) {
    let seed = Seed::new(b"12345678901234567890".to_vec()).unwrap();
    let totp = Totp::new(&seed, OtpParams::default()).unwrap();
    let now = 1_795_737_600u64;
    let code = totp.code_at(now).unwrap();
    let mut group = c.benchmark_group("mfa/match_window");
    for window in [1u64, 3] {
        group.bench_function(format!("window-{window}/valid"), |b| {
            b.iter(|| match_window(&totp, code.expose(), now, 0, None, window))
        });
        group.bench_function(format!("window-{window}/wrong"), |b| {
            b.iter(|| match_window(&totp, "000000", now, 0, None, window))
        });
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
