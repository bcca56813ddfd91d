//! The authority's operations over the store: enrol, activate, resync,
//! deactivate, list, and verify a code for a guarded operation.
//!
//! Invariant: every decision that reads and changes a device runs inside the
//! store's single writer (`Store::update_devices`, or a `CodeCheck` the
//! writer runs after judging the operation it guards), so two requests with
//! the same code cannot both see the step unspent, and the verdict is
//! returned only after the spent step, the counters and the ledger entry are
//! durable. The caller's right to the operation is judged before a code is
//! looked at: a request refused for its own sake spends no code and charges
//! no device a failure.
//!
//! A stolen admin key alone cannot give anyone a usable device: once any
//! admin has an active device (`admin_guarded`), enrolling a device needs a
//! code from one of the caller's own active devices; a device is activated
//! only by its owner, with two codes, within the pending time; and an
//! owner's first activation expires every older pending device of theirs.

use std::collections::HashSet;
use std::sync::Arc;

use wormbox_model::{Clock, Role, Timestamp};
use wormbox_store::ledger::LedgerOp;
use wormbox_store::{Actor, CodeCheck, DeviceChange, DeviceUpdate, Store};
use wormbox_token::pskc::{self, OtpKind, PskcKey};
use wormbox_token::{Code, OtpParams, Seed, Totp};

use crate::device::{self, DeviceRecord, DeviceState, Policy, Verdict};
use crate::{MasterKey, MfaError, Serial};

/// One device to enrol.
#[derive(Debug)]
pub struct Enrollment {
    /// Its serial.
    pub serial: String,
    /// Algorithm, digits, step, T0.
    pub params: OtpParams,
    /// Its seed.
    pub seed: Seed,
}

/// What a guarded operation is, for the ledger entry that spends the code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Operation {
    /// The bucket concerned, or empty.
    pub bucket: String,
    /// A short description, for example `delete-version key=a version=0C..`.
    pub what: String,
}

/// A device as listed: never its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Serial.
    pub serial: String,
    /// Owner's access key id.
    pub owner: String,
    /// Algorithm, digits, step, T0.
    pub params: OtpParams,
    /// Life-cycle state.
    pub state: DeviceState,
    /// Tracked drift in steps.
    pub drift_steps: i64,
    /// Failures in a row.
    pub failures: u32,
    /// Unix second until which it is locked out, or 0.
    pub locked_until: u64,
    /// Enrolment time.
    pub created_at: Timestamp,
}

impl From<&DeviceRecord> for DeviceInfo {
    fn from(r: &DeviceRecord) -> DeviceInfo {
        DeviceInfo {
            serial: r.serial.clone(),
            owner: r.owner.clone(),
            params: r.params,
            state: r.state,
            drift_steps: r.drift,
            failures: r.failures,
            locked_until: r.locked_until,
            created_at: Timestamp(r.created_at),
        }
    }
}

/// The MFA authority.
#[derive(Clone, Debug)]
pub struct Authority {
    store: Store,
    key: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    counts: Arc<Counters>,
}

/// Codes judged since the authority started, by outcome (`Authority::counts`,
/// for the metrics endpoint). A code is counted when it is judged, inside
/// the writer; a group that then fails to commit leaves it counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerificationCounts {
    /// Codes accepted.
    pub accepted: u64,
    /// Wrong codes (each a failure charged to its device).
    pub invalid: u64,
    /// Codes already spent.
    pub replayed: u64,
    /// Codes of a device locked out, not looked at.
    pub locked_out: u64,
    /// Codes naming no usable device of the caller (unknown, not active,
    /// another's, malformed, or a seed that does not open).
    pub unusable: u64,
    /// Lockouts begun: a device's failures reached the policy's limit.
    pub lockouts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: std::sync::atomic::AtomicU64,
    invalid: std::sync::atomic::AtomicU64,
    replayed: std::sync::atomic::AtomicU64,
    locked_out: std::sync::atomic::AtomicU64,
    unusable: std::sync::atomic::AtomicU64,
    lockouts: std::sync::atomic::AtomicU64,
}

impl Counters {
    fn add(counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The authority's verdict on a code prepared by `Authority::check_code`:
/// the accepted device, or why the code was refused. The store returns it
/// with `Guarded::CodeRefused`, once the refusal is durable.
pub type CodeVerdict = Result<Serial, MfaError>;

/// Why a refused code was refused, from the verdict a store answer of
/// `Guarded::CodeRefused` carries.
pub fn refusal(verdict: CodeVerdict) -> MfaError {
    match verdict {
        Err(err) => err,
        // The store said refused while the authority accepted: a bug, not a verdict.
        Ok(_) => MfaError::Corrupt,
    }
}

fn secs(t: Timestamp) -> u64 {
    u64::try_from(t.0 / 1_000_000).unwrap_or(0)
}

/// A generator nobody holds: unknown and unusable devices are checked
/// against it so that they take as long as a real check.
fn decoy() -> Totp {
    let seed = Seed::new(vec![0x5a; 20]).unwrap_or_else(|_| unreachable!("20 bytes is a valid seed"));
    Totp::new(&seed, OtpParams::default()).unwrap_or_else(|_| unreachable!("default parameters are valid"))
}

/// Activation and resync: the device is in `state`, and the caller is its
/// owner. Activation is the owner's alone, since an admin who enrolled a
/// seed of their choosing for someone must not be able to make it usable;
/// so is resync, since a failed pair counts against the device and nobody
/// else may lock a token out by trying.
fn may_pair(record: &DeviceRecord, actor: &Actor, state: DeviceState) -> bool {
    record.state == state && record.owner == actor.access_key
}

/// Whether the stored device `raw` keeps its serial from a new enrolment:
/// every device does except one that expired unactivated (its serial is a
/// real token's, which can then be enrolled again). A damaged record keeps it.
fn serial_taken(raw: &[u8], now: u64, pending_secs: u64) -> bool {
    DeviceRecord::decode(raw)
        .map_or(true, |r| r.state != DeviceState::Expired && !pending_expired(&r, now, pending_secs))
}

/// Whether a pending device enrolled at `created_at` (µs) has waited past
/// `pending_secs` at unix second `now`.
fn pending_expired(record: &DeviceRecord, now: u64, pending_secs: u64) -> bool {
    let enrolled = u64::try_from(record.created_at / 1_000_000).unwrap_or(0);
    record.state == DeviceState::Pending && now > enrolled.saturating_add(pending_secs)
}

fn refused_change(serial: &str, bucket: &str, reason: &str, what: &str) -> DeviceChange {
    DeviceChange {
        serial: serial.to_owned(),
        record: None,
        op: LedgerOp::MfaRefused,
        bucket: bucket.to_owned(),
        detail: format!("reason={reason}; operation={what}"),
    }
}

impl Authority {
    /// An authority over `store`, sealing with `key`.
    pub fn new(store: Store, key: MasterKey, clock: Arc<dyn Clock>, policy: Policy) -> Authority {
        Authority { store, key: Arc::new(key), clock, policy, counts: Arc::default() }
    }

    /// Codes judged since the authority started, by outcome.
    pub fn counts(&self) -> VerificationCounts {
        let c = &self.counts;
        let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        VerificationCounts {
            accepted: load(&c.accepted),
            invalid: load(&c.invalid),
            replayed: load(&c.replayed),
            locked_out: load(&c.locked_out),
            unusable: load(&c.unusable),
            lockouts: load(&c.lockouts),
        }
    }

    /// Seals `secret` for `purpose` under the master key the seeds are
    /// sealed with (`MasterKey::seal_secret`): a principal's S3 secret,
    /// which signature checks need in clear, is kept this way.
    pub fn seal_secret(&self, purpose: &str, secret: &[u8]) -> Result<Vec<u8>, MfaError> {
        self.key.seal_secret(purpose, secret)
    }

    /// Opens what `seal_secret` sealed for `purpose`; another purpose, or
    /// another appliance's key, does not open it.
    pub fn open_secret(&self, purpose: &str, sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, MfaError> {
        self.key.open_secret(purpose, sealed)
    }

    fn record(&self, serial: &str) -> Result<Option<DeviceRecord>, MfaError> {
        self.store.device(serial)?.map(|raw| DeviceRecord::decode(&raw)).transpose()
    }

    fn records(&self, owner: Option<&str>) -> Result<Vec<DeviceRecord>, MfaError> {
        let mut out = Vec::new();
        for (_, raw) in self.store.devices()? {
            let record = DeviceRecord::decode(&raw)?;
            if owner.is_none_or(|o| o == record.owner) {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Every device, or those of `owner`. A pending device past its pending
    /// time is listed as expired, which it is: it can no longer be activated.
    pub fn list(&self, owner: Option<&str>) -> Result<Vec<DeviceInfo>, MfaError> {
        let now = secs(self.clock.now());
        let mut out = Vec::new();
        for record in self.records(owner)? {
            let mut info = DeviceInfo::from(&record);
            if pending_expired(&record, now, self.policy.pending_secs) {
                info.state = DeviceState::Expired;
            }
            out.push(info);
        }
        Ok(out)
    }

    /// Whether the appliance's administration is guarded: some admin
    /// principal has an active device. From then on, every administrative
    /// change that could lower protection needs a code from one of the
    /// caller's own active devices (ARCHITECTURE.md, "MFA-protected
    /// administration"). Revoked admins count: revoking the only admin with
    /// a device must not switch the guard off.
    pub fn admin_guarded(&self) -> Result<bool, MfaError> {
        let admins: HashSet<String> =
            self.store.principals()?.into_iter().filter(|(_, r)| r.role == Role::Admin).map(|(key, _)| key).collect();
        Ok(self.records(None)?.iter().any(|d| d.state == DeviceState::Active && admins.contains(&d.owner)))
    }

    /// Whether `owner` has an active device.
    pub fn has_active_device(&self, owner: &str) -> Result<bool, MfaError> {
        Ok(self.list(Some(owner))?.iter().any(|d| d.state == DeviceState::Active))
    }

    /// Whether `actor` may enrol devices at all. Judged before the request's
    /// seeds are read, since reading a passphrase-protected PSKC document
    /// costs PBKDF2 work that a caller without the right must not buy.
    pub fn may_enroll(actor: &Actor) -> Result<(), MfaError> {
        if actor.role != Role::Admin {
            return Err(MfaError::AccessDenied("only an admin may enrol MFA devices".into()));
        }
        Ok(())
    }

    /// Turns a PSKC document into enrolments (all or nothing). Blocking:
    /// PBKDF2 may take up to a second of CPU.
    pub fn enrollments_from_pskc(document: &str, key: Option<&PskcKey>) -> Result<Vec<Enrollment>, MfaError> {
        let mut out = Vec::new();
        for entry in pskc::parse(document, key)? {
            let serial = entry.serial.clone().unwrap_or_else(|| entry.key_id.clone());
            if entry.kind != OtpKind::Totp {
                return Err(MfaError::InvalidArgument(format!(
                    "key `{serial}` is HOTP (counter-based); MFA Delete needs time-based (TOTP) tokens"
                )));
            }
            let seed = Seed::new(entry.secret.to_vec())
                .map_err(|e| MfaError::InvalidArgument(format!("key `{serial}`: {e}")))?;
            out.push(Enrollment { serial, params: entry.otp_params(), seed });
        }
        Ok(out)
    }

    /// Enrols devices for `owner`, all or none, as `Pending`. Only an admin
    /// may. Once the appliance is guarded (`admin_guarded`), `guard` must be
    /// a valid code from one of the caller's own active devices; before
    /// that, when `owner` already has an active device, a code from one of
    /// them. So a stolen admin key alone adds no device to anyone's MFA; the
    /// very first admin device of a new appliance is the only one enrolled
    /// with no code at all, and only its owner can activate it.
    pub async fn enroll(
        &self,
        actor: &Actor,
        owner: &str,
        devices: Vec<Enrollment>,
        guard: Option<&str>,
    ) -> Result<Vec<DeviceInfo>, MfaError> {
        Self::may_enroll(actor)?;
        if devices.is_empty() {
            return Err(MfaError::InvalidArgument("nothing to enrol".into()));
        }
        let principal_exists =
            self.store.principals()?.iter().any(|(key, record)| key == owner && record.revoked_at.is_none());
        if !principal_exists {
            return Err(MfaError::InvalidArgument(format!("owner `{owner}` is not an active principal")));
        }
        let mut records = Vec::with_capacity(devices.len());
        let mut serials = Vec::with_capacity(devices.len());
        for device in &devices {
            let serial = Serial::new(&device.serial)?;
            if serials.contains(&serial.to_string()) {
                return Err(MfaError::DuplicateSerial(serial.to_string()));
            }
            Totp::new(&device.seed, device.params).map_err(|e| MfaError::InvalidArgument(format!("{serial}: {e}")))?;
            records.push(DeviceRecord {
                serial: serial.to_string(),
                owner: owner.to_owned(),
                params: device.params,
                state: DeviceState::Pending,
                drift: 0,
                last_step: None,
                failures: 0,
                lockouts: 0,
                locked_until: 0,
                created_at: 0,
                sealed_seed: self.key.seal(serial.as_str(), &device.seed)?,
            });
            serials.push(serial.to_string());
        }
        // A serial already taken is refused before the guard code is spent on
        // an enrolment that could not run (the writer re-checks it).
        let pending_secs = self.policy.pending_secs;
        let now = secs(self.clock.now());
        for serial in &serials {
            if self.store.device(serial)?.is_some_and(|raw| serial_taken(&raw, now, pending_secs)) {
                return Err(MfaError::DuplicateSerial(serial.clone()));
            }
        }
        let code_from = if self.admin_guarded()? {
            Some((
                actor.access_key.as_str(),
                "an admin has an active MFA device: enrolling a device needs a code from one of your own active \
                 MFA devices"
                    .to_owned(),
            ))
        } else if self.has_active_device(owner)? {
            Some((owner, format!("`{owner}` already has an active MFA device: enrolling another needs a code from it")))
        } else {
            None
        };
        if let Some((code_owner, why)) = code_from {
            let what = format!("enroll-device {}", serials.join(","));
            let operation = Operation { bucket: String::new(), what };
            // An admin key trying to add a device behind the owner's back is
            // evidence, so the refusal is a ledger entry like a wrong code.
            let Some(guard) = guard else {
                return Err(self.missing_code(actor, &operation, &why).await);
            };
            self.verify(actor, code_owner, guard, &operation).await?;
        }
        let update = DeviceUpdate(Box::new(move |current, now| {
            let taken =
                |raw: &Option<Vec<u8>>| raw.as_ref().is_some_and(|raw| serial_taken(raw, secs(now), pending_secs));
            if let Some(pos) = current.iter().position(taken) {
                return (Vec::new(), Err(MfaError::DuplicateSerial(records[pos].serial.clone())));
            }
            let mut changes = Vec::new();
            let mut infos = Vec::new();
            for mut record in records {
                record.created_at = now.0;
                infos.push(DeviceInfo::from(&record));
                let p = record.params;
                changes.push(DeviceChange {
                    serial: record.serial.clone(),
                    record: Some(record.encode()),
                    op: LedgerOp::MfaEnrolled,
                    bucket: String::new(),
                    detail: format!(
                        "owner={}; alg={}; digits={}; step={}; t0={}",
                        record.owner, p.algorithm, p.digits, p.step_secs, p.t0
                    ),
                });
            }
            (changes, Ok(infos))
        }));
        self.store.update_devices(actor, serials, update).await?.1
    }

    /// Activates a pending device with two consecutive codes. Only its owner
    /// may, within the pending time (`Policy::pending_secs`) of its
    /// enrolment; a late attempt expires it. Activating expires the owner's
    /// older pending devices: a device someone enrolled for them before
    /// they chose their token never becomes usable.
    pub async fn activate(
        &self,
        actor: &Actor,
        serial: &str,
        first: &str,
        second: &str,
    ) -> Result<DeviceInfo, MfaError> {
        self.pair(actor, serial, first, second, false).await
    }

    /// Resynchronises an active device with two consecutive codes.
    pub async fn resync(&self, actor: &Actor, serial: &str, first: &str, second: &str) -> Result<DeviceInfo, MfaError> {
        self.pair(actor, serial, first, second, true).await
    }

    async fn pair(
        &self,
        actor: &Actor,
        serial: &str,
        first: &str,
        second: &str,
        resync: bool,
    ) -> Result<DeviceInfo, MfaError> {
        let serial = Serial::new(serial).map_err(|_| MfaError::Invalid)?;
        let (wanted_state, op, what) = if resync {
            (DeviceState::Active, LedgerOp::MfaResynced, "resync")
        } else {
            (DeviceState::Pending, LedgerOp::MfaActivated, "activate")
        };
        // The wide search is done here, outside the writer; the writer only
        // re-checks the two steps found.
        let target = self.record(serial.as_str())?;
        // The owner's older pending devices, which a first activation expires.
        let older: Vec<String> = match &target {
            Some(record) if !resync && may_pair(record, actor, wanted_state) => self
                .records(Some(&record.owner))?
                .into_iter()
                .filter(|d| d.state == DeviceState::Pending && d.serial != record.serial)
                .filter(|d| d.created_at < record.created_at)
                .map(|d| d.serial)
                .collect(),
            _ => Vec::new(),
        };
        let found = match target {
            Some(record) if may_pair(&record, actor, wanted_state) => {
                let seed = self.key.open(serial.as_str(), &record.sealed_seed)?;
                let totp = Totp::new(&seed, record.params).map_err(|_| MfaError::Corrupt)?;
                let now = secs(self.clock.now());
                match (Code::parse(first, record.params.digits), Code::parse(second, record.params.digits)) {
                    (Some(a), Some(b)) => {
                        device::find_pair(&totp, &a, &b, now, record.last_step, self.policy.search_secs).ok()
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let (first, second) = (first.to_owned(), second.to_owned());
        let key = self.key.clone();
        let policy = self.policy;
        let caller = actor.clone();
        let name = serial.to_string();
        let mut serials = vec![serial.to_string()];
        serials.extend(older);
        let update = DeviceUpdate(Box::new(move |current, now| {
            let now = secs(now);
            let mut current = current.into_iter();
            let record = current.next().flatten().map(|raw| DeviceRecord::decode(&raw));
            let mut record = match record {
                Some(Ok(r)) if may_pair(&r, &caller, wanted_state) => r,
                _ => return (vec![refused_change(&name, "", "invalid", what)], Err(MfaError::Invalid)),
            };
            if pending_expired(&record, now, policy.pending_secs) {
                record.state = DeviceState::Expired;
                let hours = policy.pending_secs / 3600;
                let change = DeviceChange {
                    serial: name.clone(),
                    record: Some(record.encode()),
                    op: LedgerOp::MfaDeactivated,
                    bucket: String::new(),
                    detail: format!("expired: not activated within {hours} h of its enrolment"),
                };
                return (vec![change], Err(MfaError::Expired(name.clone())));
            }
            if record.locked_until > now {
                let until = record.locked_until;
                return (vec![refused_change(&name, "", "locked-out", what)], Err(MfaError::LockedOut { until }));
            }
            let confirmed = found.filter(|&s| {
                let Ok(seed) = key.open(&name, &record.sealed_seed) else { return false };
                let Ok(totp) = Totp::new(&seed, record.params) else { return false };
                let code = |step: u64, text: &str| {
                    let given = Code::parse(text, record.params.digits);
                    totp.code_at_step(step).is_ok_and(|c| given.is_some_and(|g| g.ct_eq(&c)))
                };
                record.last_step.is_none_or(|l| s > l) && code(s, &first) && code(s + 1, &second)
            });
            match confirmed {
                Some(step) => {
                    let current_step = now.saturating_sub(record.params.t0) / record.params.step_secs;
                    record.accept_pair(step, current_step);
                    record.state = DeviceState::Active;
                    let info = DeviceInfo::from(&record);
                    let detail = format!("drift={} steps", record.drift);
                    let enrolled = record.created_at;
                    let mut changes = vec![DeviceChange {
                        serial: name.clone(),
                        record: Some(record.encode()),
                        op,
                        bucket: String::new(),
                        detail,
                    }];
                    // Re-read here: only devices still pending and older expire.
                    for other in current.flatten().filter_map(|raw| DeviceRecord::decode(&raw).ok()) {
                        if other.state == DeviceState::Pending && other.created_at < enrolled {
                            let serial = other.serial.clone();
                            let expired = DeviceRecord { state: DeviceState::Expired, ..other };
                            changes.push(DeviceChange {
                                serial,
                                record: Some(expired.encode()),
                                op: LedgerOp::MfaDeactivated,
                                bucket: String::new(),
                                detail: format!("expired: its owner activated {name}, enrolled later"),
                            });
                        }
                    }
                    (changes, Ok(info))
                }
                None => {
                    record.fail(now, &policy);
                    let mut change = refused_change(&name, "", "invalid", what);
                    change.record = Some(record.encode());
                    (vec![change], Err(MfaError::Invalid))
                }
            }
        }));
        self.store.update_devices(actor, serials, update).await?.1
    }

    /// Verifies `mfa` (`SERIAL CODE`) as a device of `owner` for `operation`,
    /// spending the code durably before returning the serial. For an
    /// operation the store judges, use `check_code` instead, so that the
    /// operation is judged before the code.
    pub async fn verify(
        &self,
        actor: &Actor,
        owner: &str,
        mfa: &str,
        operation: &Operation,
    ) -> Result<Serial, MfaError> {
        let check = self.check_code(owner, mfa, operation);
        self.store.update_devices(actor, vec![check.serial], check.update).await?.1
    }

    /// Prepares `mfa` (`SERIAL CODE`) as a code of a device of `owner` for
    /// `operation`, for the store to judge inside its writer after the
    /// operation itself (`Store::delete_object_with_code` and its siblings):
    /// a refused operation never reaches the code. A refused code's verdict
    /// comes back with the store's `Guarded::CodeRefused`.
    pub fn check_code(&self, owner: &str, mfa: &str, operation: &Operation) -> CodeCheck<CodeVerdict> {
        let parsed = mfa.split_once(' ').and_then(|(serial, code)| Some((Serial::new(serial).ok()?, code.to_owned())));
        let Some((serial, code)) = parsed else {
            // Still a refused attempt worth recording; the text is not echoed.
            let name = "(malformed)".to_owned();
            let change = refused_change(&name, &operation.bucket, "malformed", &operation.what);
            let counts = Arc::clone(&self.counts);
            let update = DeviceUpdate(Box::new(move |_, _| {
                Counters::add(&counts.unusable);
                let _ = device::match_window(&decoy(), "", 0, 0, None, 1);
                (vec![change], Err(MfaError::Invalid))
            }));
            return CodeCheck { serial: name, update };
        };
        let key = self.key.clone();
        let policy = self.policy;
        let owner = owner.to_owned();
        let operation = operation.clone();
        let name = serial.to_string();
        let accepted = serial.clone();
        let counts = Arc::clone(&self.counts);
        let update = DeviceUpdate(Box::new(move |current, now| {
            let now = secs(now);
            let record = current.into_iter().next().flatten().map(|raw| DeviceRecord::decode(&raw));
            let usable = match record {
                Some(Ok(r)) if r.state == DeviceState::Active && r.owner == owner => Ok(r),
                Some(Ok(r)) if r.owner != owner => Err("not-owners-device"),
                Some(Ok(r)) => Err(r.state.as_str()),
                Some(Err(_)) => Err("damaged-record"),
                None => Err("unknown-device"),
            };
            let mut record = match usable {
                Ok(r) => r,
                Err(reason) => {
                    Counters::add(&counts.unusable);
                    let _ = device::match_window(&decoy(), &code, now, 0, None, policy.window);
                    return (
                        vec![refused_change(&name, &operation.bucket, reason, &operation.what)],
                        Err(MfaError::Invalid),
                    );
                }
            };
            let totp = key.open(&name, &record.sealed_seed).ok().and_then(|seed| Totp::new(&seed, record.params).ok());
            let Some(totp) = totp else {
                Counters::add(&counts.unusable);
                let change = refused_change(&name, &operation.bucket, "seed-unreadable", &operation.what);
                return (vec![change], Err(MfaError::Sealing));
            };
            let lockouts_before = record.lockouts;
            let verdict = record.check(&totp, &code, now, &policy);
            Counters::add(match verdict {
                Verdict::Accepted { .. } => &counts.accepted,
                Verdict::Invalid => &counts.invalid,
                Verdict::Replayed => &counts.replayed,
                Verdict::LockedOut { .. } => &counts.locked_out,
            });
            if record.lockouts > lockouts_before {
                Counters::add(&counts.lockouts);
            }
            let (result, change) = match verdict {
                Verdict::Accepted { .. } => (
                    Ok(accepted),
                    DeviceChange {
                        serial: name.clone(),
                        record: None,
                        op: LedgerOp::MfaAccepted,
                        bucket: operation.bucket.clone(),
                        detail: format!("operation={}", operation.what),
                    },
                ),
                Verdict::Invalid => {
                    (Err(MfaError::Invalid), refused_change(&name, &operation.bucket, "invalid", &operation.what))
                }
                Verdict::Replayed => {
                    (Err(MfaError::Replayed), refused_change(&name, &operation.bucket, "replayed", &operation.what))
                }
                Verdict::LockedOut { until } => (
                    Err(MfaError::LockedOut { until }),
                    refused_change(&name, &operation.bucket, "locked-out", &operation.what),
                ),
            };
            (vec![DeviceChange { record: Some(record.encode()), ..change }], result)
        }));
        CodeCheck { serial: serial.to_string(), update }
    }

    /// Answers a request that carries no code where its operation needs
    /// one: `Required`, as every operation answers a missing code, after a
    /// refused-attempt ledger entry (no device is charged a failure).
    pub async fn missing_code(&self, actor: &Actor, operation: &Operation, why: &str) -> MfaError {
        let name = "(none)".to_owned();
        let change = refused_change(&name, &operation.bucket, "missing", &operation.what);
        let update = DeviceUpdate(Box::new(move |_, _| (vec![change], ())));
        match self.store.update_devices(actor, vec![name], update).await {
            Ok(_) => MfaError::Required(why.to_owned()),
            Err(err) => MfaError::Store(err),
        }
    }

    /// Deactivates a device for good; needs a valid code from one of the
    /// owner's active devices (usually the device itself) or, for an admin
    /// retiring someone else's device (a lost token), from one of the
    /// admin's own. The caller's right is judged before the code; no code
    /// (`None`) is `Required`.
    pub async fn deactivate(&self, actor: &Actor, serial: &str, mfa: Option<&str>) -> Result<DeviceInfo, MfaError> {
        let serial = Serial::new(serial).map_err(|_| MfaError::Invalid)?;
        let record = self.record(serial.as_str())?.ok_or(MfaError::Invalid)?;
        if actor.role != Role::Admin && actor.access_key != record.owner {
            return Err(MfaError::Invalid);
        }
        let what = format!("deactivate-device {serial}");
        let operation = Operation { bucket: String::new(), what };
        let Some(mfa) = mfa else {
            let why = "deactivating a device needs a code from one of its owner's active MFA devices";
            return Err(self.missing_code(actor, &operation, why).await);
        };
        // The owner vouches with one of their devices; an admin retiring
        // someone else's device only with one of the admin's own, so that no
        // admin can charge the owner's token a failure by naming it.
        let code_owner = if actor.access_key == record.owner { &record.owner } else { &actor.access_key };
        self.verify(actor, code_owner, mfa, &operation).await?;
        let name = serial.to_string();
        let update = DeviceUpdate(Box::new(move |current, _| {
            match current.into_iter().next().flatten().map(|raw| DeviceRecord::decode(&raw)) {
                Some(Ok(mut record)) => {
                    record.state = DeviceState::Deactivated;
                    let info = DeviceInfo::from(&record);
                    let change = DeviceChange {
                        serial: name,
                        record: Some(record.encode()),
                        op: LedgerOp::MfaDeactivated,
                        bucket: String::new(),
                        detail: String::new(),
                    };
                    (vec![change], Ok(info))
                }
                _ => (Vec::new(), Err(MfaError::Invalid)),
            }
        }));
        self.store.update_devices(actor, vec![serial.to_string()], update).await?.1
    }
}

#[cfg(test)]
mod tests;
