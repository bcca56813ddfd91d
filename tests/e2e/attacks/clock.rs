//! Attacks through the system clock and restarts (issue 16, finding 14): root
//! on the appliance sets the clock ten years ahead and restarts the service
//! again and again; each restart used to let the held-back compliance clock
//! walk forward by the whole tolerance (+60 s a restart). The compliance clock
//! now catches up only at its rate (a week per year) over real running time,
//! so restarts earn nothing; and the same rule closes a maintenance window's
//! gap on its own, with no admin, never early.

use std::time::Duration;

use wormbox_model::{Clock as _, Timestamp};
use wormbox_proto::v1;
use wormbox_test_utils::{TEST_EPOCH, TestAppliance};

use crate::e2e::reason;

const HOUR: Duration = Duration::from_secs(3600);
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
/// The default catch-up rate: seven days per 365 days of running.
const WEEK_PER_YEAR_SECS: u64 = 7 * 24 * 3600;

/// The most the default rate lets the compliance clock gain on real time over `running`.
fn allowance(running: Duration) -> Duration {
    let micros = running.as_micros() * u128::from(WEEK_PER_YEAR_SECS) / YEAR.as_secs() as u128;
    Duration::from_micros(u64::try_from(micros).unwrap())
}

async fn get_clock(app: &TestAppliance) -> v1::GetClockResponse {
    app.admin().await.unwrap().get_clock(v1::GetClockRequest {}).await.unwrap().into_inner()
}

fn ledger_ops(app: &TestAppliance) -> Vec<String> {
    let entries = app.server().app().store().ledger_entries(1).unwrap();
    entries.iter().map(|(e, _)| e.op.as_str().to_owned()).collect()
}

#[tokio::test]
async fn restarts_with_the_system_clock_ten_years_ahead_earn_the_compliance_clock_nothing() {
    let mut app = TestAppliance::start().await.unwrap();
    let real_start = app.clock().now();
    app.clock().set(real_start.saturating_add(10 * YEAR));
    let clock = get_clock(&app).await;
    assert!(clock.held_back_seconds > 9 * YEAR.as_secs(), "{clock:?}");

    let mut running = Duration::ZERO;
    for restart in 1..=6 {
        // A minute of running, then a restart with no downtime.
        app.clock().advance(Duration::from_secs(60));
        running += Duration::from_secs(60);
        app.restart().await.unwrap();
        let clock = get_clock(&app).await;
        let real = real_start.saturating_add(running);
        let ahead = Duration::from_micros(u64::try_from(clock.compliance_unix_micros - real.0).unwrap());
        assert!(ahead <= allowance(running), "restart {restart}: {ahead:?} ahead of real time after {running:?}");
        assert!(clock.held_back_seconds > 9 * YEAR.as_secs(), "{clock:?}");
        assert_eq!(clock.catch_up_seconds_per_year, WEEK_PER_YEAR_SECS);
        // Ten years at a week per year: some five centuries away.
        let eta = Timestamp(clock.caught_up_unix_micros);
        assert!(eta > Timestamp(clock.system_unix_micros).saturating_add(500 * YEAR), "{clock:?}");
    }
    let ops = ledger_ops(&app);
    assert!(ops.iter().any(|op| op == "clock-held-back"), "{ops:?}");
    assert!(!ops.iter().any(|op| op == "clock-accepted" || op == "clock-caught-up"), "{ops:?}");
}

#[tokio::test]
async fn a_maintenance_window_closes_on_its_own_without_an_admin_and_never_early() {
    let mut app = TestAppliance::start().await.unwrap();
    let mut archive = app.archive().await.unwrap();
    archive.create_bucket(v1::CreateBucketRequest { bucket: "vault".into(), object_lock: true }).await.unwrap();
    // Retained until two hours from now.
    let until = TEST_EPOCH.saturating_add(2 * HOUR);
    let header = v1::PutObjectHeader {
        bucket: "vault".into(),
        key: "k".into(),
        retention: Some(v1::Retention {
            mode: v1::RetentionMode::Compliance as i32,
            retain_until_unix_micros: until.0,
        }),
        ..Default::default()
    };
    let messages = vec![
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) },
        v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(b"record".to_vec())) },
    ];
    let locked = archive.put_object(tokio_stream::iter(messages)).await.unwrap().into_inner();
    let purge = || v1::DeleteObjectRequest {
        bucket: "vault".into(),
        key: "k".into(),
        version_id: locked.version_id.clone(),
        ..Default::default()
    };

    // An hour's maintenance window; the system clock is right throughout.
    app.stop().await.unwrap();
    app.clock().advance(HOUR);
    app.restart().await.unwrap();
    let restarted_at = app.clock().now();
    let clock = get_clock(&app).await;
    assert_eq!(clock.held_back_seconds, 3600, "downtime earns nothing: {clock:?}");
    assert_eq!(clock.catch_up_seconds_per_year, WEEK_PER_YEAR_SECS);
    // An hour at a week per year: 187,714.29 s, a little over 52 hours.
    let to_catch_up = Duration::from_micros(187_714_285_715);
    assert_eq!(clock.caught_up_unix_micros, restarted_at.saturating_add(to_catch_up).0, "{clock:?}");

    // Ninety minutes on, the retention has passed by the system clock but
    // not by the compliance clock: after an outage it ends late, never early.
    app.clock().advance(90 * 60 * Duration::from_secs(1));
    let mut archive = app.archive().await.unwrap();
    assert_eq!(reason(&archive.delete_object(purge()).await.unwrap_err()), "OBJECT_LOCKED");

    // At the time GetClock named, the gap is closed, with no admin.
    app.clock().advance(to_catch_up - 90 * 60 * Duration::from_secs(1));
    let clock = get_clock(&app).await;
    assert_eq!(clock.held_back_seconds, 0, "{clock:?}");
    assert_eq!(clock.caught_up_unix_micros, 0, "{clock:?}");
    assert_eq!(clock.compliance_unix_micros, clock.system_unix_micros);
    archive.delete_object(purge()).await.unwrap();
    let ops = ledger_ops(&app);
    assert_eq!(ops.iter().filter(|op| *op == "clock-held-back").count(), 1, "{ops:?}");
    assert!(ops.iter().any(|op| op == "clock-caught-up"), "{ops:?}");
    assert!(!ops.iter().any(|op| op == "clock-accepted"), "{ops:?}");
}
