//! PSKC (RFC 6030) key containers: reading what token vendors ship, and
//! writing one (the simulator ships its own seed this way).
//!
//! Supported: plain values; a pre-shared key or a PBKDF2 passphrase
//! (HMAC-SHA1 PRF) protecting values with AES-128-CBC (IV prepended), with the
//! MAC key itself encrypted and every encrypted value carrying an HMAC-SHA1
//! `ValueMAC` over IV || ciphertext.
//!
//! Invariant: parsing is all or nothing. A document that is malformed, uses
//! an unsupported algorithm, fails a MAC or padding check, or names a serial
//! twice yields an error and no keys; the MAC is checked (in constant time)
//! before anything is decrypted.

use std::collections::HashSet;
use std::fmt::Write as _;

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use data_encoding::BASE64;
use ring::{hmac, pbkdf2};
use zeroize::Zeroizing;

use crate::otp::{Algorithm, OtpParams, Seed};

/// Largest document accepted.
pub const MAX_DOCUMENT: usize = 1 << 20;

/// Most PBKDF2 iterations a passphrase-protected document may ask for.
/// RFC 6030's example uses 1,000, and the passphrase only protects the file
/// in transit; a million is about a second of one core. The count is chosen
/// by whoever wrote the file, so without a bound one request could ask for
/// minutes of CPU.
pub const MAX_PBKDF2_ITERATIONS: u32 = 1_000_000;

const NS_PSKC: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
const URI_HOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:hotp";
const URI_TOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:totp";
const URI_AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
const URI_HMAC_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#hmac-sha1";
const URI_PBKDF2: &str = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2";

/// Why a document imports nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PskcError {
    /// Not well-formed XML, or not a PSKC container.
    #[error("not a PSKC document: {0}")]
    Malformed(String),
    /// A required element or attribute is absent.
    #[error("PSKC document lacks {0}")]
    Missing(&'static str),
    /// An algorithm or version this importer does not handle.
    #[error("unsupported in PSKC document: {0}")]
    Unsupported(String),
    /// Encrypted values but no key or passphrase given.
    #[error("the PSKC document is encrypted; give its pre-shared key or passphrase")]
    NeedKey,
    /// Decryption failed: the key or passphrase is wrong (or the data is corrupt).
    #[error("cannot decrypt the PSKC document: wrong key or passphrase, or corrupt data")]
    WrongKey,
    /// A value's MAC does not match.
    #[error("MAC check failed for {0}: the document was altered or the key is wrong")]
    MacMismatch(String),
    /// A field's value cannot be read.
    #[error("invalid {0} in PSKC document")]
    Invalid(&'static str),
    /// Two key packages name the same device serial.
    #[error("serial `{0}` appears twice in the PSKC document")]
    DuplicateSerial(String),
    /// The passphrase derivation asks for more work than is accepted.
    #[error(
        "the PSKC document asks for {0} PBKDF2 iterations, more than the {max} accepted; \
         export it again with fewer iterations or a pre-shared key",
        max = MAX_PBKDF2_ITERATIONS
    )]
    TooManyIterations(u32),
}

/// How an encrypted document's key is given.
#[derive(Clone)]
pub enum PskcKey {
    /// A 16-byte AES-128 pre-shared key.
    PreShared(Zeroizing<Vec<u8>>),
    /// A passphrase for PBKDF2.
    Passphrase(Zeroizing<String>),
}

impl std::fmt::Debug for PskcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PskcKey::PreShared(_) => "PskcKey::PreShared(<redacted>)",
            PskcKey::Passphrase(_) => "PskcKey::Passphrase(<redacted>)",
        })
    }
}

/// OTP kind named by a key's `Algorithm` URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtpKind {
    /// Counter-based.
    Hotp,
    /// Time-based.
    Totp,
}

/// One key of a container.
pub struct PskcEntry {
    /// `DeviceInfo/SerialNo`.
    pub serial: Option<String>,
    /// `DeviceInfo/Manufacturer`.
    pub manufacturer: Option<String>,
    /// `Key/@Id`.
    pub key_id: String,
    /// `Key/Issuer`.
    pub issuer: Option<String>,
    /// HOTP or TOTP.
    pub kind: OtpKind,
    /// `AlgorithmParameters/Suite` (HMAC-SHA1 if absent).
    pub algorithm: Algorithm,
    /// `ResponseFormat/@Length`.
    pub digits: Option<u8>,
    /// `Data/Counter`.
    pub counter: Option<u64>,
    /// `Data/Time` (T0).
    pub time: Option<u64>,
    /// `Data/TimeInterval` (step).
    pub time_interval: Option<u64>,
    /// The secret, decrypted.
    pub secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PskcEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PskcEntry")
            .field("serial", &self.serial)
            .field("key_id", &self.key_id)
            .field("kind", &self.kind)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .finish_non_exhaustive()
    }
}

type Node<'a, 'i> = roxmltree::Node<'a, 'i>;

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| c.is_element() && c.tag_name().name() == name)
}

fn path<'a, 'i>(node: Node<'a, 'i>, names: &[&str]) -> Option<Node<'a, 'i>> {
    names.iter().try_fold(node, |n, name| child(n, name))
}

fn text(node: Node<'_, '_>) -> String {
    node.text().unwrap_or("").trim().to_owned()
}

fn base64(node: Node<'_, '_>, what: &'static str) -> Result<Vec<u8>, PskcError> {
    let clean: String = node.text().unwrap_or("").chars().filter(|c| !c.is_whitespace()).collect();
    BASE64.decode(clean.as_bytes()).map_err(|_| PskcError::Invalid(what))
}

fn number<T: std::str::FromStr>(node: Option<Node<'_, '_>>, what: &'static str) -> Result<Option<T>, PskcError> {
    node.map(|n| text(n).parse().map_err(|_| PskcError::Invalid(what))).transpose()
}

/// Reads every key of a document; `key` is needed when values are encrypted.
pub fn parse(document: &str, key: Option<&PskcKey>) -> Result<Vec<PskcEntry>, PskcError> {
    if document.len() > MAX_DOCUMENT {
        return Err(PskcError::Malformed(format!("larger than {MAX_DOCUMENT} bytes")));
    }
    let doc = roxmltree::Document::parse(document).map_err(|e| PskcError::Malformed(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "KeyContainer" || root.tag_name().namespace() != Some(NS_PSKC) {
        return Err(PskcError::Malformed("the root is not a PSKC KeyContainer".into()));
    }
    match root.attribute("Version") {
        Some("1.0") => {}
        Some(other) => return Err(PskcError::Unsupported(format!("container version {other}"))),
        None => return Err(PskcError::Missing("KeyContainer/@Version")),
    }

    let encryption_key = match child(root, "EncryptionKey") {
        None => None,
        Some(node) => Some(derive_key(node, key.ok_or(PskcError::NeedKey)?)?),
    };
    let mac_key = match child(root, "MACMethod") {
        None => None,
        Some(method) => {
            if method.attribute("Algorithm") != Some(URI_HMAC_SHA1) {
                return Err(PskcError::Unsupported(format!("MAC method {:?}", method.attribute("Algorithm"))));
            }
            let encrypted = child(method, "MACKey").ok_or(PskcError::Missing("MACMethod/MACKey"))?;
            let enc_key = encryption_key.as_ref().ok_or(PskcError::Missing("EncryptionKey"))?;
            Some(decrypt(encrypted, enc_key)?)
        }
    };

    let mut entries = Vec::new();
    let mut serials = HashSet::new();
    for package in root.children().filter(|c| c.is_element() && c.tag_name().name() == "KeyPackage") {
        let entry = parse_package(package, encryption_key.as_ref(), mac_key.as_ref())?;
        if let Some(serial) = &entry.serial
            && !serials.insert(serial.clone())
        {
            return Err(PskcError::DuplicateSerial(serial.clone()));
        }
        entries.push(entry);
    }
    if entries.is_empty() {
        return Err(PskcError::Missing("KeyPackage"));
    }
    Ok(entries)
}

fn derive_key(node: Node<'_, '_>, key: &PskcKey) -> Result<Zeroizing<Vec<u8>>, PskcError> {
    if let Some(derived) = child(node, "DerivedKey") {
        let PskcKey::Passphrase(passphrase) = key else {
            return Err(PskcError::WrongKey);
        };
        let method = child(derived, "KeyDerivationMethod").ok_or(PskcError::Missing("KeyDerivationMethod"))?;
        if method.attribute("Algorithm") != Some(URI_PBKDF2) {
            return Err(PskcError::Unsupported(format!("key derivation {:?}", method.attribute("Algorithm"))));
        }
        let params = child(method, "PBKDF2-params").ok_or(PskcError::Missing("PBKDF2-params"))?;
        let salt = base64(path(params, &["Salt", "Specified"]).ok_or(PskcError::Missing("Salt"))?, "salt")?;
        let iterations: u32 =
            number(child(params, "IterationCount"), "IterationCount")?.ok_or(PskcError::Missing("IterationCount"))?;
        let length: usize = number(child(params, "KeyLength"), "KeyLength")?.unwrap_or(16);
        if let Some(prf) = child(params, "PRF").and_then(|p| p.attribute("Algorithm"))
            && !prf.ends_with("hmac-sha1")
        {
            return Err(PskcError::Unsupported(format!("PBKDF2 PRF {prf}")));
        }
        if length != 16 {
            return Err(PskcError::Unsupported(format!("derived key length {length}")));
        }
        let iterations = std::num::NonZeroU32::new(iterations).ok_or(PskcError::Invalid("IterationCount"))?;
        if iterations.get() > MAX_PBKDF2_ITERATIONS {
            return Err(PskcError::TooManyIterations(iterations.get()));
        }
        let mut out = Zeroizing::new(vec![0u8; length]);
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA1, iterations, &salt, passphrase.as_bytes(), &mut out);
        return Ok(out);
    }
    if child(node, "KeyName").is_some() {
        let PskcKey::PreShared(psk) = key else {
            return Err(PskcError::WrongKey);
        };
        if psk.len() != 16 {
            return Err(PskcError::Unsupported(format!("pre-shared key of {} bytes (AES-128 needs 16)", psk.len())));
        }
        return Ok(psk.clone());
    }
    Err(PskcError::Unsupported("EncryptionKey is neither a KeyName nor a DerivedKey".into()))
}

/// Decrypts an `xenc` encrypted value (EncryptionMethod + CipherData).
fn decrypt(node: Node<'_, '_>, key: &[u8]) -> Result<Zeroizing<Vec<u8>>, PskcError> {
    let (iv, ct) = cipher_parts(node)?;
    let plain = cbc::Decryptor::<aes::Aes128>::new_from_slices(key, &iv)
        .map_err(|_| PskcError::WrongKey)?
        .decrypt_padded_vec_mut::<Pkcs7>(&ct)
        .map_err(|_| PskcError::WrongKey)?;
    Ok(Zeroizing::new(plain))
}

fn cipher_parts(node: Node<'_, '_>) -> Result<(Vec<u8>, Vec<u8>), PskcError> {
    let method = child(node, "EncryptionMethod").and_then(|m| m.attribute("Algorithm"));
    if method != Some(URI_AES128_CBC) {
        return Err(PskcError::Unsupported(format!("encryption method {method:?}")));
    }
    let value = path(node, &["CipherData", "CipherValue"]).ok_or(PskcError::Missing("CipherValue"))?;
    let mut bytes = base64(value, "CipherValue")?;
    if bytes.len() < 32 || bytes.len() % 16 != 0 {
        return Err(PskcError::Invalid("CipherValue length"));
    }
    let ct = bytes.split_off(16);
    Ok((bytes, ct))
}

fn parse_package(
    package: Node<'_, '_>,
    encryption_key: Option<&Zeroizing<Vec<u8>>>,
    mac_key: Option<&Zeroizing<Vec<u8>>>,
) -> Result<PskcEntry, PskcError> {
    let key = child(package, "Key").ok_or(PskcError::Missing("KeyPackage/Key"))?;
    let key_id = key.attribute("Id").ok_or(PskcError::Missing("Key/@Id"))?.to_owned();
    let kind = match key.attribute("Algorithm") {
        Some(URI_HOTP) => OtpKind::Hotp,
        Some(URI_TOTP) => OtpKind::Totp,
        other => return Err(PskcError::Unsupported(format!("key algorithm {other:?}"))),
    };
    let params = child(key, "AlgorithmParameters");
    let algorithm = match params.and_then(|p| child(p, "Suite")).map(text) {
        None => Algorithm::Sha1,
        Some(suite) => {
            suite.trim_start_matches("HMAC-").parse().map_err(|_| PskcError::Unsupported(format!("suite {suite}")))?
        }
    };
    let format = params.and_then(|p| child(p, "ResponseFormat"));
    if let Some(encoding) = format.and_then(|f| f.attribute("Encoding"))
        && encoding != "DECIMAL"
    {
        return Err(PskcError::Unsupported(format!("response encoding {encoding}")));
    }
    let digits = format
        .and_then(|f| f.attribute("Length"))
        .map(|l| l.parse::<u8>().map_err(|_| PskcError::Invalid("ResponseFormat/@Length")))
        .transpose()?;

    let data = child(key, "Data").ok_or(PskcError::Missing("Key/Data"))?;
    let secret_node = child(data, "Secret").ok_or(PskcError::Missing("Data/Secret"))?;
    let secret = value(secret_node, "Secret", encryption_key, mac_key)?;
    let plain_number = |name: &'static str| -> Result<Option<u64>, PskcError> {
        match child(data, name) {
            None => Ok(None),
            Some(node) => {
                let bytes = value(node, name, encryption_key, mac_key)?;
                let text = std::str::from_utf8(&bytes).map_err(|_| PskcError::Invalid(name))?;
                text.trim().parse().map(Some).map_err(|_| PskcError::Invalid(name))
            }
        }
    };
    Ok(PskcEntry {
        serial: path(package, &["DeviceInfo", "SerialNo"]).map(text),
        manufacturer: path(package, &["DeviceInfo", "Manufacturer"]).map(text),
        key_id,
        issuer: child(key, "Issuer").map(text),
        kind,
        algorithm,
        digits,
        counter: plain_number("Counter")?,
        time: plain_number("Time")?,
        time_interval: plain_number("TimeInterval")?,
        secret,
    })
}

/// A `Data` field's value: a plain value (base64 for the secret, text for
/// numbers) or an encrypted value checked against its `ValueMAC`.
fn value(
    node: Node<'_, '_>,
    what: &'static str,
    encryption_key: Option<&Zeroizing<Vec<u8>>>,
    mac_key: Option<&Zeroizing<Vec<u8>>>,
) -> Result<Zeroizing<Vec<u8>>, PskcError> {
    if let Some(plain) = child(node, "PlainValue") {
        return Ok(Zeroizing::new(if what == "Secret" {
            base64(plain, "PlainValue")?
        } else {
            text(plain).into_bytes()
        }));
    }
    let encrypted = child(node, "EncryptedValue").ok_or(PskcError::Missing("PlainValue or EncryptedValue"))?;
    let key = encryption_key.ok_or(PskcError::Missing("EncryptionKey"))?;
    let (iv, ct) = cipher_parts(encrypted)?;
    if let Some(mac_key) = mac_key {
        let mac = base64(child(node, "ValueMAC").ok_or(PskcError::Missing("ValueMAC"))?, "ValueMAC")?;
        let mut signed = iv.clone();
        signed.extend_from_slice(&ct);
        hmac::verify(&hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, mac_key), &signed, &mac)
            .map_err(|_| PskcError::MacMismatch(what.to_owned()))?;
    }
    decrypt(encrypted, key)
}

impl PskcEntry {
    /// The TOTP parameters this entry describes, with `default_step` when the
    /// document names none.
    pub fn otp_params(&self) -> OtpParams {
        OtpParams {
            algorithm: self.algorithm,
            digits: self.digits.unwrap_or(6),
            step_secs: self.time_interval.unwrap_or(30),
            t0: self.time.unwrap_or(0),
        }
    }
}

/// Writes one TOTP key as a PSKC document protected by a pre-shared AES-128
/// key, as a vendor ships a seed file. `randomness` gives the IVs and MAC key.
pub fn write_encrypted(
    serial: &str,
    manufacturer: &str,
    seed: &Seed,
    params: OtpParams,
    psk: &[u8; 16],
    randomness: &dyn ring::rand::SecureRandom,
) -> Result<String, ring::error::Unspecified> {
    let mut mac_key = Zeroizing::new([0u8; 20]);
    randomness.fill(mac_key.as_mut())?;
    let encrypt = |plain: &[u8]| -> Result<String, ring::error::Unspecified> {
        let mut iv = [0u8; 16];
        randomness.fill(&mut iv)?;
        let ct = cbc::Encryptor::<aes::Aes128>::new(psk.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain);
        let mut out = iv.to_vec();
        out.extend_from_slice(&ct);
        Ok(BASE64.encode(&out))
    };
    let mac_key_value = encrypt(mac_key.as_ref())?;
    let secret_value = encrypt(seed.expose())?;
    let signed = BASE64.decode(secret_value.as_bytes()).map_err(|_| ring::error::Unspecified)?;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, mac_key.as_ref()), &signed);
    let suite = match params.algorithm {
        Algorithm::Sha1 => String::new(),
        other => format!("<Suite>HMAC-{other}</Suite>"),
    };
    let mut xml = String::new();
    let _ = write!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="{NS_PSKC}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
  <EncryptionKey><ds:KeyName>Pre-shared-key</ds:KeyName></EncryptionKey>
  <MACMethod Algorithm="{URI_HMAC_SHA1}">
    <MACKey>
      <xenc:EncryptionMethod Algorithm="{URI_AES128_CBC}"/>
      <xenc:CipherData><xenc:CipherValue>{mac_key_value}</xenc:CipherValue></xenc:CipherData>
    </MACKey>
  </MACMethod>
  <KeyPackage>
    <DeviceInfo><Manufacturer>{manufacturer}</Manufacturer><SerialNo>{serial}</SerialNo></DeviceInfo>
    <Key Id="{serial}" Algorithm="{URI_TOTP}">
      <AlgorithmParameters>{suite}<ResponseFormat Length="{digits}" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data>
        <Secret>
          <EncryptedValue>
            <xenc:EncryptionMethod Algorithm="{URI_AES128_CBC}"/>
            <xenc:CipherData><xenc:CipherValue>{secret_value}</xenc:CipherValue></xenc:CipherData>
          </EncryptedValue>
          <ValueMAC>{mac}</ValueMAC>
        </Secret>
        <Time><PlainValue>{t0}</PlainValue></Time>
        <TimeInterval><PlainValue>{step}</PlainValue></TimeInterval>
      </Data>
    </Key>
  </KeyPackage>
</KeyContainer>
"#,
        digits = params.digits,
        mac = BASE64.encode(tag.as_ref()),
        t0 = params.t0,
        step = params.step_secs,
    );
    Ok(xml)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIGURE2: &str = include_str!("../testdata/rfc6030-figure2-plain.xml");
    const FIGURE6: &str = include_str!("../testdata/rfc6030-figure6-psk-aes128cbc.xml");

    fn psk() -> PskcKey {
        PskcKey::PreShared(Zeroizing::new(data_encoding::HEXLOWER.decode(b"12345678901234567890123456789012").unwrap()))
    }

    /// RFC 6030 Figure 7, rebuilt from the values in the test data README.
    fn figure7() -> String {
        r##"<?xml version="1.0" encoding="UTF-8"?>
<pskc:KeyContainer xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"
  xmlns:xenc11="http://www.w3.org/2009/xmlenc11#"
  xmlns:pkcs5="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#"
  xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Version="1.0">
  <pskc:EncryptionKey>
    <xenc11:DerivedKey>
      <xenc11:KeyDerivationMethod Algorithm="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2">
        <pkcs5:PBKDF2-params>
          <Salt><Specified>Ej7/PEpyEpw=</Specified></Salt>
          <IterationCount>1000</IterationCount>
          <KeyLength>16</KeyLength>
          <PRF/>
        </pkcs5:PBKDF2-params>
      </xenc11:KeyDerivationMethod>
      <xenc:ReferenceList><xenc:DataReference URI="#ED"/></xenc:ReferenceList>
      <xenc11:MasterKeyName>My Password 1</xenc11:MasterKeyName>
    </xenc11:DerivedKey>
  </pskc:EncryptionKey>
  <pskc:MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1">
    <pskc:MACKey>
      <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
      <xenc:CipherData>
        <xenc:CipherValue>2GTTnLwM3I4e5IO5FkufoOEiOhNj91fhKRQBtBJYluUDsPOLTfUvoU2dStyOwYZx</xenc:CipherValue>
      </xenc:CipherData>
    </pskc:MACKey>
  </pskc:MACMethod>
  <pskc:KeyPackage>
    <pskc:DeviceInfo>
      <pskc:Manufacturer>TokenVendorAcme</pskc:Manufacturer>
      <pskc:SerialNo>987654321</pskc:SerialNo>
    </pskc:DeviceInfo>
    <pskc:CryptoModuleInfo><pskc:Id>CM_ID_001</pskc:Id></pskc:CryptoModuleInfo>
    <pskc:Key Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp" Id="123456">
      <pskc:Issuer>Example-Issuer</pskc:Issuer>
      <pskc:AlgorithmParameters><pskc:ResponseFormat Length="8" Encoding="DECIMAL"/></pskc:AlgorithmParameters>
      <pskc:Data>
        <pskc:Secret>
          <pskc:EncryptedValue Id="ED">
            <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
            <xenc:CipherData>
              <xenc:CipherValue>oTvo+S22nsmS2Z/RtcoF8Hfh+jzMe0RkiafpoDpnoZTjPYZu6V+A4aEn032yCr4f</xenc:CipherValue>
            </xenc:CipherData>
          </pskc:EncryptedValue>
          <pskc:ValueMAC>LP6xMvjtypbfT9PdkJhBZ+D6O4w=</pskc:ValueMAC>
        </pskc:Secret>
        <pskc:Counter><pskc:PlainValue>0</pskc:PlainValue></pskc:Counter>
      </pskc:Data>
    </pskc:Key>
  </pskc:KeyPackage>
</pskc:KeyContainer>"##
            .to_owned()
    }

    #[test]
    fn figure2_plain() {
        let entries = parse(FIGURE2, None).unwrap();
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(e.secret.as_slice(), b"1234");
        assert_eq!(e.key_id, "12345678");
        assert_eq!(e.issuer.as_deref(), Some("Issuer-A"));
        assert_eq!(e.kind, OtpKind::Hotp);
        assert_eq!(e.serial, None);
    }

    #[test]
    fn figure6_pre_shared_key() {
        let entries = parse(FIGURE6, Some(&psk())).unwrap();
        let e = &entries[0];
        assert_eq!(e.secret.as_slice(), b"12345678901234567890");
        assert_eq!(e.serial.as_deref(), Some("987654321"));
        assert_eq!(e.digits, Some(8));
        assert_eq!(e.kind, OtpKind::Hotp);
        assert_eq!(e.counter, Some(0));
        assert_eq!(parse(FIGURE6, None).unwrap_err(), PskcError::NeedKey);
    }

    #[test]
    fn figure6_negative_cases_import_nothing() {
        // One flipped bit in the secret's ciphertext: the MAC catches it.
        let good = "AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGv";
        let mut raw = BASE64.decode(good.as_bytes()).unwrap();
        raw[20] ^= 1;
        let flipped = FIGURE6.replace(good, &BASE64.encode(&raw));
        assert_eq!(parse(&flipped, Some(&psk())).unwrap_err(), PskcError::MacMismatch("Secret".into()));
        // A wrong pre-shared key: the MAC key decrypts to garbage (bad padding) or fails the MAC.
        let wrong = PskcKey::PreShared(Zeroizing::new(vec![0x42; 16]));
        let err = parse(FIGURE6, Some(&wrong)).unwrap_err();
        assert!(matches!(err, PskcError::WrongKey | PskcError::MacMismatch(_)), "{err:?}");
        // A passphrase where a pre-shared key is needed.
        let passphrase = PskcKey::Passphrase(Zeroizing::new("qwerty".into()));
        assert_eq!(parse(FIGURE6, Some(&passphrase)).unwrap_err(), PskcError::WrongKey);
        // Malformed and truncated documents.
        assert!(matches!(parse(&FIGURE6[..FIGURE6.len() / 2], Some(&psk())), Err(PskcError::Malformed(_))));
        assert!(matches!(parse("<KeyContainer Version=\"1.0\"/>", None), Err(PskcError::Malformed(_))));
        assert!(matches!(parse("not xml at all", None), Err(PskcError::Malformed(_))));
        let huge = format!("{FIGURE2}{}", " ".repeat(MAX_DOCUMENT));
        assert!(matches!(parse(&huge, None), Err(PskcError::Malformed(_))));
    }

    #[test]
    fn figure7_pbkdf2_passphrase() {
        let passphrase = PskcKey::Passphrase(Zeroizing::new("qwerty".into()));
        let entries = parse(&figure7(), Some(&passphrase)).unwrap();
        let e = &entries[0];
        assert_eq!(e.secret.as_slice(), b"12345678901234567890");
        assert_eq!(e.serial.as_deref(), Some("987654321"));
        assert_eq!(e.key_id, "123456");
        assert_eq!(e.digits, Some(8));
        assert_eq!(e.manufacturer.as_deref(), Some("TokenVendorAcme"));
        // The derived key of the RFC.
        let mut key = [0u8; 16];
        let salt = BASE64.decode(b"Ej7/PEpyEpw=").unwrap();
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA1, 1000.try_into().unwrap(), &salt, b"qwerty", &mut key);
        assert_eq!(data_encoding::HEXLOWER.encode(&key), "651e63cd57008476af1ff6422cd02e41");
        let wrong = PskcKey::Passphrase(Zeroizing::new("qwertz".into()));
        let err = parse(&figure7(), Some(&wrong)).unwrap_err();
        assert!(matches!(err, PskcError::WrongKey | PskcError::MacMismatch(_)), "{err:?}");
    }

    #[test]
    fn an_iteration_count_above_the_bound_is_refused_before_deriving() {
        let passphrase = PskcKey::Passphrase(Zeroizing::new("qwerty".into()));
        let started = std::time::Instant::now();
        let too_many = figure7().replace(">1000<", ">10000000<");
        assert_eq!(parse(&too_many, Some(&passphrase)).unwrap_err(), PskcError::TooManyIterations(10_000_000));
        assert!(started.elapsed() < std::time::Duration::from_millis(500), "{:?}", started.elapsed());
    }

    #[test]
    fn a_duplicate_serial_fails_the_whole_document() {
        let package = |serial: &str| {
            format!(
                r#"<KeyPackage><DeviceInfo><SerialNo>{serial}</SerialNo></DeviceInfo>
                <Key Id="k{serial}" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
                <Data><Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret></Data></Key></KeyPackage>"#
            )
        };
        let doc = |serials: &[&str]| {
            format!(
                r#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">{}</KeyContainer>"#,
                serials.iter().map(|s| package(s)).collect::<String>()
            )
        };
        assert_eq!(parse(&doc(&["654321", "123456", "9999999"]), None).unwrap().len(), 3);
        assert_eq!(
            parse(&doc(&["654321", "123456", "9999999", "9999999"]), None).unwrap_err(),
            PskcError::DuplicateSerial("9999999".into())
        );
    }

    #[test]
    fn written_documents_read_back_and_vendor_totp_fields_are_kept() {
        let seed = Seed::new(b"12345678901234567890".to_vec()).unwrap();
        let params = OtpParams { algorithm: Algorithm::Sha256, digits: 8, step_secs: 60, t0: 120 };
        let key = [7u8; 16];
        let xml =
            write_encrypted("GAHT12345678", "Wormbox", &seed, params, &key, &ring::rand::SystemRandom::new()).unwrap();
        assert!(!xml.contains("MTIzNDU2Nzg5MDEyMzQ1Njc4OTA"), "the seed must not be in clear");
        let entries = parse(&xml, Some(&PskcKey::PreShared(Zeroizing::new(key.to_vec())))).unwrap();
        assert_eq!(entries[0].secret.as_slice(), seed.expose());
        assert_eq!(entries[0].kind, OtpKind::Totp);
        assert_eq!(entries[0].otp_params(), params);
        assert_eq!(entries[0].serial.as_deref(), Some("GAHT12345678"));
    }
}
