//! The `tokensim` binary as an operator runs it: it prints its terminal,
//! links it, answers on it with the right codes, and exports its seed only
//! as an encrypted PSKC file.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use wormbox_token::pskc::{self, PskcKey};
use wormbox_token::source::{SerialToken, TokenSource};
use wormbox_token::{OtpParams, Seed, Totp};
use zeroize::Zeroizing;

const SEED_HEX: &str = "3132333435363738393031323334353637383930";

#[test]
fn serves_codes_on_the_terminal_it_prints_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("token");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokensim"))
        .args(["--serial", "GAHT12345678", "--seed-hex", SEED_HEX, "--link"])
        .arg(&link)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let path = line.rsplit(' ').next().unwrap().to_owned();
    assert!(line.starts_with("tokensim: serial GAHT12345678 on /dev/pts/"), "{line}");
    assert_eq!(std::fs::read_link(&link).unwrap().to_str().unwrap(), path);

    let code = SerialToken::open(link.to_str().unwrap(), Some("GAHT12345678")).unwrap().read_code().unwrap();
    // The binary keeps real time; accept the step either side of ours.
    let totp = Totp::new(&Seed::from_hex(SEED_HEX).unwrap(), OtpParams::default()).unwrap();
    #[expect(clippy::disallowed_methods, reason = "the simulator binary runs on the wall clock")]
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let step = totp.step_at(now).unwrap();
    assert!((step - 1..=step + 1).any(|s| totp.code_at_step(s).unwrap().ct_eq(&code.code)));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn exports_its_seed_as_an_encrypted_pskc_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.pskc");
    let key = "000102030405060708090a0b0c0d0e0f";
    let status = Command::new(env!("CARGO_BIN_EXE_tokensim"))
        .args(["--serial", "GAHT12345678", "--seed-hex", SEED_HEX, "--step", "60", "--digits", "8", "--export-pskc"])
        .arg(&file)
        .args(["--export-key-hex", key])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let xml = std::fs::read_to_string(&file).unwrap();
    assert!(!xml.contains("MTIzNDU2Nzg5MDEyMzQ1Njc4OTA") && !xml.contains(SEED_HEX));
    let psk = PskcKey::PreShared(Zeroizing::new(data_encoding::HEXLOWER.decode(key.as_bytes()).unwrap()));
    let entries = pskc::parse(&xml, Some(&psk)).unwrap();
    assert_eq!(entries[0].secret.as_slice(), b"12345678901234567890");
    assert_eq!((entries[0].otp_params().step_secs, entries[0].otp_params().digits), (60, 8));

    // A bad key is refused before anything is written.
    let bad = Command::new(env!("CARGO_BIN_EXE_tokensim"))
        .args(["--seed-hex", SEED_HEX, "--export-pskc"])
        .arg(dir.path().join("never"))
        .args(["--export-key-hex", "abcd"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("32 hex digits"));
    assert!(!dir.path().join("never").exists());
}
