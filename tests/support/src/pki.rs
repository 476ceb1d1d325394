//! Certificates made with rcgen at test time: a test CA and leaf certificates that are good,
//! for the wrong name, expired, or from an unknown CA. Nothing is committed.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A certificate authority that signs leaf certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub name: String,
}

/// A leaf certificate and its key, as PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    /// Writes `cert.pem` (leaf then CA) and `key.pem` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, ca: &TestCa) -> Result<(PathBuf, PathBuf)> {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, format!("{}{}", self.cert_pem, ca.pem()))?;
        std::fs::write(&key, &self.key_pem)?;
        Ok((cert, key))
    }
}

impl TestCa {
    pub fn new(name: &str) -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "wscheck tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(30);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self {
            issuer,
            name: name.to_owned(),
        })
    }

    /// The CA certificate as PEM (what `--cacert` takes).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate to `dir/ca.pem`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.pem())?;
        Ok(path)
    }

    /// A server certificate for `names`, valid from yesterday for 30 days.
    pub fn leaf(&self, names: &[&str]) -> Result<Leaf> {
        let now = OffsetDateTime::now_utc();
        self.leaf_valid(names, now - Duration::days(1), now + Duration::days(30))
    }

    /// A server certificate for `names` that expired yesterday.
    pub fn expired_leaf(&self, names: &[&str]) -> Result<Leaf> {
        let now = OffsetDateTime::now_utc();
        self.leaf_valid(names, now - Duration::days(60), now - Duration::days(1))
    }

    fn leaf_valid(
        &self,
        names: &[&str],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Leaf> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone())?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
