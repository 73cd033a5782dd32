//! Certificates made by the `openssl` command line in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Key algorithms.
#[derive(Clone, Copy, Debug)]
pub enum Key {
    Ec,
    Rsa,
    Ed25519,
}

/// A directory of openssl-made keys and certificates, referred to by name.
pub struct OpenSsl {
    pub dir: tempfile::TempDir,
}

impl OpenSsl {
    pub fn new() -> Self {
        OpenSsl {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn p(&self, file: &str) -> String {
        self.path(file).display().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        openssl_in(self.dir.path(), args);
    }

    /// `NAME.key` (PKCS#8).
    pub fn key(&self, name: &str, kind: Key) {
        let out = format!("{name}.key");
        match kind {
            Key::Ec => self.openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &out,
            ]),
            Key::Rsa => self.openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &out,
            ]),
            Key::Ed25519 => self.openssl(&["genpkey", "-algorithm", "ED25519", "-out", &out]),
        }
    }

    /// A self-signed root `NAME.crt` with a new EC key.
    pub fn root(&self, name: &str, cn: &str) {
        self.key(name, Key::Ec);
        self.openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={cn}"),
            "-days",
            "3650",
            "-out",
            &format!("{name}.crt"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    /// `NAME.crt` for a new key of `kind`, signed by `issuer`, with extension lines `ext`.
    pub fn sign(&self, name: &str, cn: &str, kind: Key, issuer: &str, ext: &str) {
        self.key(name, kind);
        self.sign_existing(name, cn, issuer, ext, 365);
    }

    /// Like `sign` for an existing `NAME.key`, valid for `days`.
    pub fn sign_existing(&self, name: &str, cn: &str, issuer: &str, ext: &str, days: u32) {
        let ext = format!("{ext}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid");
        let days = days.to_string();
        self.sign_raw(
            name,
            name,
            &format!("/CN={cn}"),
            issuer,
            &ext,
            &["-days", &days],
        );
    }

    /// `NAME.crt` for the existing `KEY.key`, subject `subject` (`/CN=…`; `/` is empty),
    /// signed by `issuer` with exactly the extension lines `ext` (openssl adds nothing), and
    /// `x509` options `extra` (default validity 365 days; `-set_serial` replaces the
    /// issuer's serial file).
    pub fn sign_raw(
        &self,
        name: &str,
        key: &str,
        subject: &str,
        issuer: &str,
        ext: &str,
        extra: &[&str],
    ) {
        let ext_file = format!("{name}.ext");
        std::fs::write(self.path(&ext_file), format!("{ext}\n")).unwrap();
        let (csr, crt) = (format!("{name}.csr"), format!("{name}.crt"));
        self.openssl(&[
            "req",
            "-new",
            "-key",
            &format!("{key}.key"),
            "-subj",
            subject,
            "-out",
            &csr,
        ]);
        let (ca, ca_key) = (format!("{issuer}.crt"), format!("{issuer}.key"));
        let mut args = vec![
            "x509", "-req", "-in", &csr, "-CA", &ca, "-CAkey", &ca_key, "-extfile", &ext_file,
            "-out", &crt,
        ];
        if !extra.contains(&"-set_serial") {
            args.push("-CAcreateserial");
        }
        if !extra.contains(&"-days") {
            args.extend(["-days", "365"]);
        }
        args.extend(extra);
        self.openssl(&args);
    }

    /// An intermediate CA `NAME` under `issuer`, with extra extension lines.
    pub fn intermediate(&self, name: &str, cn: &str, issuer: &str, extra: &str) {
        let constraints = if extra.contains("basicConstraints") {
            ""
        } else {
            "basicConstraints=critical,CA:TRUE\n"
        };
        self.sign(
            name,
            cn,
            Key::Ec,
            issuer,
            &format!("{constraints}keyUsage=critical,keyCertSign,cRLSign\n{extra}"),
        );
    }

    /// Concatenates files into `out`.
    pub fn cat(&self, out: &str, parts: &[&str]) {
        let mut text = String::new();
        for part in parts {
            text.push_str(&std::fs::read_to_string(self.path(part)).unwrap());
        }
        std::fs::write(self.path(out), text).unwrap();
    }

    /// Runs an arbitrary openssl command in the directory.
    pub fn run(&self, args: &[&str]) {
        self.openssl(args)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs `openssl args` in `dir`, which must succeed; its standard output.
pub fn openssl_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command line must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A standard openssl PKI: root `root`, intermediate `int`, and an XMPP server leaf
/// `server` naming xmpp.example.com and host1.example.com, plus `fullchain.pem`.
pub fn xmpp_pki() -> OpenSsl {
    let pki = OpenSsl::new();
    pki.root("root", "Test Root CA");
    pki.intermediate("int", "Test Intermediate CA", "root", "");
    pki.sign(
        "server",
        "xmpp.example.com",
        Key::Ec,
        "int",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:xmpp.example.com,DNS:host1.example.com\n\
         authorityInfoAccess=caIssuers;URI:http://pki.example.com/int.crt",
    );
    pki.cat("fullchain.pem", &["server.crt", "int.crt"]);
    pki
}
