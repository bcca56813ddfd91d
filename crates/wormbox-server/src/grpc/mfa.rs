//! `MfaService`: devices of the MFA authority.
//!
//! Invariant: seeds arrive only in EnrollDevice and are sealed before
//! anything is stored; no response, error or log line carries a seed or a
//! code (the request's fields are never formatted into messages).

use std::sync::Arc;

use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};
use wormbox_mfa::{Authority, Enrollment};
use wormbox_proto::v1::{self, mfa_server::Mfa};
use wormbox_token::pskc::PskcKey;
use wormbox_token::{OtpParams, Seed};
use zeroize::Zeroizing;

use crate::grpc::auth::authenticate;
use crate::grpc::convert;
use crate::grpc::status::{invalid, status};
use wormbox_app::{self as app, App, MfaCode};

/// The Mfa gRPC service.
#[derive(Clone, Debug)]
pub struct MfaService {
    app: Arc<App>,
    /// PSKC documents are read one at a time: each may cost a second of
    /// PBKDF2, and an admin key (stolen or not) buys at most one core's worth.
    pskc_reader: Arc<Semaphore>,
}

impl MfaService {
    /// Serves `app`.
    pub fn new(app: Arc<App>) -> MfaService {
        MfaService { app, pskc_reader: Arc::new(Semaphore::new(1)) }
    }
}

fn seed_enrollment(seed: v1::SeedEnrollment) -> Result<Enrollment, Status> {
    let secret = match (seed.seed_base32.is_empty(), seed.seed_hex.is_empty()) {
        (false, true) => Seed::from_base32(&Zeroizing::new(seed.seed_base32)),
        (true, false) => Seed::from_hex(&Zeroizing::new(seed.seed_hex)),
        _ => return Err(invalid("give exactly one of seed_base32 and seed_hex")),
    }
    .map_err(|e| invalid(e.to_string()))?;
    let params = OtpParams {
        algorithm: convert::otp_algorithm(seed.algorithm)?,
        digits: match seed.digits {
            0 => 6,
            d => u8::try_from(d).map_err(|_| invalid("digits must be 6, 7 or 8"))?,
        },
        step_secs: match seed.step_seconds {
            0 => 30,
            s => u64::from(s),
        },
        t0: seed.t0_unix_seconds,
    };
    params.validate().map_err(|e| invalid(e.to_string()))?;
    Ok(Enrollment { serial: seed.serial, params, seed: secret })
}

fn pskc_enrollments(pskc: v1::PskcEnrollment) -> Result<Vec<Enrollment>, Status> {
    let key = match (pskc.pre_shared_key.is_empty(), pskc.passphrase.is_empty()) {
        (true, true) => None,
        (false, true) => Some(PskcKey::PreShared(Zeroizing::new(pskc.pre_shared_key))),
        (true, false) => Some(PskcKey::Passphrase(Zeroizing::new(pskc.passphrase))),
        (false, false) => return Err(invalid("give a pre-shared key or a passphrase, not both")),
    };
    Authority::enrollments_from_pskc(&pskc.document, key.as_ref()).map_err(status)
}

fn device_codes(serial: String, first: String, second: String) -> app::DeviceCodes {
    app::DeviceCodes { serial, first: MfaCode::new(first), second: MfaCode::new(second) }
}

#[tonic::async_trait]
impl Mfa for MfaService {
    async fn enroll_device(
        &self,
        request: Request<v1::EnrollDeviceRequest>,
    ) -> Result<Response<v1::EnrollDeviceResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        // The role is judged before the document is read: a passphrase costs
        // PBKDF2 work, which only a caller who may enrol gets to spend.
        self.app.may_enroll_devices(&actor).map_err(status)?;
        let request = request.into_inner();
        let owner = if request.owner.is_empty() { actor.access_key.clone() } else { request.owner };
        let mfa = convert::mfa(&request.mfa);
        let devices = match request.source {
            Some(v1::enroll_device_request::Source::Seed(seed)) => vec![seed_enrollment(seed)?],
            Some(v1::enroll_device_request::Source::Pskc(pskc)) => {
                // A missing or malformed guard code is refused before the
                // document's PBKDF2 work is spent.
                self.app.may_read_pskc(&actor, &owner, mfa.as_ref()).await.map_err(status)?;
                let _reader = Arc::clone(&self.pskc_reader)
                    .acquire_owned()
                    .await
                    .map_err(|_| Status::unavailable("the server is stopping"))?;
                // Off the async runtime: up to a second of CPU must not stall other calls.
                tokio::task::spawn_blocking(move || pskc_enrollments(pskc))
                    .await
                    .map_err(|_| Status::internal("reading the PSKC document failed"))??
            }
            None => return Err(invalid("give a seed or a PSKC document")),
        };
        let enroll = app::EnrollDevices { owner, devices, mfa };
        let enrolled = self.app.enroll_devices(&actor, enroll).await.map_err(status)?;
        Ok(Response::new(v1::EnrollDeviceResponse { devices: enrolled.iter().map(convert::device).collect() }))
    }

    async fn activate_device(
        &self,
        request: Request<v1::ActivateDeviceRequest>,
    ) -> Result<Response<v1::ActivateDeviceResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let r = request.into_inner();
        let device = self.app.activate_device(&actor, device_codes(r.serial, r.first_code, r.second_code)).await;
        let device = device.map_err(status)?;
        Ok(Response::new(v1::ActivateDeviceResponse { device: Some(convert::device(&device)) }))
    }

    async fn resync_device(
        &self,
        request: Request<v1::ResyncDeviceRequest>,
    ) -> Result<Response<v1::ResyncDeviceResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let r = request.into_inner();
        let device = self.app.resync_device(&actor, device_codes(r.serial, r.first_code, r.second_code)).await;
        let device = device.map_err(status)?;
        Ok(Response::new(v1::ResyncDeviceResponse { device: Some(convert::device(&device)) }))
    }

    async fn list_devices(
        &self,
        request: Request<v1::ListDevicesRequest>,
    ) -> Result<Response<v1::ListDevicesResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let list = app::ListDevices { owner: convert::optional(request.into_inner().owner) };
        let app = Arc::clone(&self.app);
        let devices = super::blocking(move || app.devices(&actor, &list)).await?.map_err(status)?;
        Ok(Response::new(v1::ListDevicesResponse { devices: devices.iter().map(convert::device).collect() }))
    }

    async fn deactivate_device(
        &self,
        request: Request<v1::DeactivateDeviceRequest>,
    ) -> Result<Response<v1::DeactivateDeviceResponse>, Status> {
        let actor = authenticate(&self.app, &request)?;
        let r = request.into_inner();
        let deactivate = app::DeactivateDevice { serial: r.serial, mfa: convert::mfa(&r.mfa) };
        let device = self.app.deactivate_device(&actor, deactivate).await.map_err(status)?;
        Ok(Response::new(v1::DeactivateDeviceResponse { device: Some(convert::device(&device)) }))
    }
}
