//! MFA devices: enrol, activate, resync, deactivate, list. The authority
//! rules each of them; this file routes and checks who may list whose.
//!
//! Invariant: no request, answer or error here carries a seed or a code
//! in a form that is logged (`Debug` of the requests leaves codes and seeds out).

use wormbox_mfa::{Authority, DeviceInfo, Enrollment, MfaError};
use wormbox_model::Role;
use wormbox_store::Actor;

use crate::app::{Access, App, AppError, MfaCode};

/// EnrollDevice: one device from a seed, or several from a PSKC document.
#[derive(Debug)]
pub struct EnrollDevices {
    /// Whose devices they become.
    pub owner: String,
    /// Serials, OTP parameters and sealed-on-arrival seeds.
    pub devices: Vec<Enrollment>,
    /// `SERIAL CODE` of one of the caller's own devices (once guarded).
    pub mfa: Option<MfaCode>,
}

/// ActivateDevice and ResyncDevice: a device's two consecutive codes.
#[derive(Clone, Debug)]
pub struct DeviceCodes {
    /// The device.
    pub serial: String,
    /// The first code.
    pub first: MfaCode,
    /// The code of the next time step.
    pub second: MfaCode,
}

/// DeactivateDevice.
#[derive(Clone, Debug)]
pub struct DeactivateDevice {
    /// The device.
    pub serial: String,
    /// `SERIAL CODE` of one of the caller's own devices.
    pub mfa: Option<MfaCode>,
}

/// ListDevices.
#[derive(Clone, Debug, Default)]
pub struct ListDevices {
    /// Whose devices; `None` is every device an admin or auditor may see,
    /// or the caller's own.
    pub owner: Option<String>,
}

impl App {
    /// EnrollDevice's first check, before the request's seeds or PSKC
    /// document are read: whether the caller may enrol devices at all.
    pub fn may_enroll_devices(&self, actor: &Actor) -> Result<(), AppError> {
        Ok(Authority::may_enroll(actor)?)
    }

    /// EnrollDevice; the authority checks the admin role and the guard code.
    pub async fn enroll_devices(&self, actor: &Actor, request: EnrollDevices) -> Result<Vec<DeviceInfo>, AppError> {
        let EnrollDevices { owner, devices, mfa } = request;
        Ok(self.mfa.enroll(actor, &owner, devices, mfa.as_ref().map(MfaCode::as_str)).await?)
    }

    /// ActivateDevice.
    pub async fn activate_device(&self, actor: &Actor, request: DeviceCodes) -> Result<DeviceInfo, AppError> {
        Ok(self.mfa.activate(actor, &request.serial, request.first.as_str(), request.second.as_str()).await?)
    }

    /// ResyncDevice.
    pub async fn resync_device(&self, actor: &Actor, request: DeviceCodes) -> Result<DeviceInfo, AppError> {
        Ok(self.mfa.resync(actor, &request.serial, request.first.as_str(), request.second.as_str()).await?)
    }

    /// DeactivateDevice; the authority checks the caller's right, then the code.
    pub async fn deactivate_device(&self, actor: &Actor, request: DeactivateDevice) -> Result<DeviceInfo, AppError> {
        Ok(self.mfa.deactivate(actor, &request.serial, request.mfa.as_ref().map(MfaCode::as_str)).await?)
    }

    /// ListDevices: admins and auditors see every device, others their own.
    /// Scans: call it off the async runtime.
    pub fn devices(&self, actor: &Actor, request: &ListDevices) -> Result<Vec<DeviceInfo>, AppError> {
        self.authorize(actor, Access::Metadata)?;
        let owner = request.owner.as_deref();
        let owner = match actor.role {
            Role::Admin | Role::Auditor => owner,
            _ if owner.is_none_or(|o| o == actor.access_key) => Some(actor.access_key.as_str()),
            _ => {
                let why = "only admins and auditors list other principals' devices";
                return Err(MfaError::AccessDenied(why.into()).into());
            }
        };
        Ok(self.mfa.list(owner)?)
    }
}
