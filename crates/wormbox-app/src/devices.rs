//! MFA devices: enrol, activate, resync, deactivate, list. The authority
//! rules each of them; this file routes and checks who may list whose.
//!
//! Invariant: no request, answer or error here carries a seed or a code
//! in a form that is logged (`Debug` of the requests leaves codes and seeds out).

use wormbox_mfa::{Authority, DeviceInfo, Enrollment, MfaError, Operation, Serial};
use wormbox_model::Role;
use wormbox_store::Actor;

use crate::{Access, App, AppError, MfaCode};

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

/// The refusal of an enrolment without a code on a guarded appliance, as
/// the authority words it.
const GUARDED_WHY: &str =
    "an admin has an active MFA device: enrolling a device needs a code from one of your own active MFA devices";

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
        Authority::may_enroll(actor).map_err(|err| match err {
            MfaError::AccessDenied(why) => self.denied(actor, "admin", why, MfaError::AccessDenied),
            other => other.into(),
        })
    }

    /// EnrollDevice's checks before a PSKC document is read (PBKDF2 work):
    /// the caller's role, then, when the enrolment needs a code (the
    /// appliance is guarded, or `owner` has an active device), that the
    /// request has one in the `SERIAL CODE` form. A missing code is
    /// MFA_REQUIRED and a malformed one MFA_INVALID, each a ledger entry as
    /// the authority makes it after reading the document; a well-formed code
    /// is judged by the authority after the document is read, so a document
    /// that cannot be enrolled spends no code. Without this, a stolen admin
    /// key on a guarded appliance bought a second of CPU per call.
    pub async fn may_read_pskc(&self, actor: &Actor, owner: &str, mfa: Option<&MfaCode>) -> Result<(), AppError> {
        self.may_enroll_devices(actor)?;
        let well_formed =
            |mfa: &MfaCode| mfa.as_str().split_once(' ').is_some_and(|(serial, _)| Serial::new(serial).is_ok());
        if mfa.is_some_and(well_formed) {
            return Ok(());
        }
        let (code_owner, why) = if self.mfa.admin_guarded()? {
            (actor.access_key.as_str(), GUARDED_WHY.to_owned())
        } else if self.mfa.has_active_device(owner)? {
            (owner, format!("`{owner}` already has an active MFA device: enrolling another needs a code from it"))
        } else {
            return Ok(());
        };
        let operation = Operation { bucket: String::new(), what: "enroll-device (PSKC document, not read)".to_owned() };
        let refused = match mfa {
            None => self.mfa.missing_code(actor, &operation, &why).await,
            // Malformed: the authority records it as such and spends nothing.
            Some(mfa) => match self.mfa.verify(actor, code_owner, mfa.as_str(), &operation).await {
                Ok(_) => return Ok(()),
                Err(err) => err,
            },
        };
        Err(refused.into())
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
                return Err(self.denied(actor, "audit", why.to_owned(), MfaError::AccessDenied));
            }
        };
        Ok(self.mfa.list(owner)?)
    }
}
