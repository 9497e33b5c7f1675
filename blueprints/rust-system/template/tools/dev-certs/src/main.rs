//! `cargo run -p dev-certs [--force] [DIR]`: issues a development CA and, for every
//! binary of this workspace, a certificate signed by it, into `DIR` (default `certs/`,
//! which git and the Docker context ignore). Each binary gets `<name>.pem` and
//! `<name>-key.pem`, valid for `<name>`, `localhost` and `127.0.0.1`, usable as server
//! and as client certificate. An existing CA is kept unless `--force` is given, because
//! replacing it invalidates every certificate it issued.
//!
//! For development only: production certificates come from a real CA (cert-manager).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Every binary that serves or calls over mutual TLS{% if gateway.enabled %}: the gateway and each service{% endif %}.
#[rustfmt::skip]
const BINARIES: &[&str] = &[
{% if gateway.enabled %}
    "gateway",
{% endif %}
{% for s in services %}
    "{{ s.name }}",
{% endfor %}
];

/// Why no certificates were written.
#[derive(Debug)]
enum Error {
    /// The CA exists and `--force` was not given.
    CaExists(PathBuf),
    /// Generating a key or a certificate failed.
    Certificate(rcgen::Error),
    /// A file could not be written.
    Write(PathBuf, io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CaExists(path) => write!(
                f,
                "{} exists; --force replaces the CA and every certificate",
                path.display()
            ),
            Self::Certificate(error) => write!(f, "cannot generate a certificate: {error}"),
            Self::Write(path, error) => write!(f, "cannot write {}: {error}", path.display()),
        }
    }
}

impl From<rcgen::Error> for Error {
    fn from(error: rcgen::Error) -> Self {
        Self::Certificate(error)
    }
}

fn main() -> ExitCode {
    let mut force = false;
    let mut dir = PathBuf::from("certs");
    for arg in std::env::args_os().skip(1) {
        if arg == "--force" {
            force = true;
        } else if arg.to_string_lossy().starts_with('-') {
            eprintln!("usage: dev-certs [--force] [DIR]");
            return ExitCode::from(2);
        } else {
            dir = PathBuf::from(arg);
        }
    }
    match issue(&dir, force) {
        Ok(()) => {
            println!(
                "wrote a development CA and certificates for {} into {}",
                BINARIES.join(", "),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dev-certs: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the CA and every binary's certificate into `dir`.
fn issue(dir: &Path, force: bool) -> Result<(), Error> {
    let ca_path = dir.join("ca.pem");
    if ca_path.exists() && !force {
        return Err(Error::CaExists(ca_path));
    }
    fs::create_dir_all(dir).map_err(|error| Error::Write(dir.to_owned(), error))?;

    let mut ca = CertificateParams::new(Vec::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, concat!({{ name | rust_str }}, " development CA"));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    write(&ca_path, &ca_cert.pem(), false)?;
    write(&dir.join("ca-key.pem"), &ca_key.serialize_pem(), true)?;
    let issuer = Issuer::new(ca, ca_key);

    for name in BINARIES {
        let mut params = CertificateParams::new(vec![
            (*name).to_owned(),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])?;
        params.distinguished_name.push(DnType::CommonName, *name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        write(&dir.join(format!("{name}.pem")), &cert.pem(), false)?;
        write(
            &dir.join(format!("{name}-key.pem")),
            &key.serialize_pem(),
            true,
        )?;
    }
    Ok(())
}

/// Writes `content` to `path`, readable by its owner only when `secret`.
fn write(path: &Path, content: &str, secret: bool) -> Result<(), Error> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options
        .open(path)
        .map_err(|error| Error::Write(path.to_owned(), error))?;
    #[cfg(unix)]
    if secret {
        // `mode` applies to new files only: tighten a key file written before.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|error| Error::Write(path.to_owned(), error))?;
    }
    file.write_all(content.as_bytes())
        .map_err(|error| Error::Write(path.to_owned(), error))
}
