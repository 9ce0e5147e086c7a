//! Key loading helpers shared by the configuration checks and the verifier.

use std::str::FromStr;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// A parsed public key from `jwt.public_key`.
#[derive(Clone)]
pub(crate) struct PublicKey {
    pub(crate) key: DecodingKey,
    pub(crate) family: AlgorithmFamily,
    /// The EC curve, for EC keys.
    pub(crate) curve: Option<EllipticCurve>,
    /// The algorithm used when none is configured.
    pub(crate) default_alg: Algorithm,
}

/// The PEM bytes of `value`: the value itself when it is PEM text, else the file it names.
pub(crate) fn load_pem(value: &str) -> Result<Vec<u8>, String> {
    let trimmed = value.trim_start();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.as_bytes().to_vec());
    }
    let path = value.trim();
    std::fs::read(path).map_err(|e| format!("cannot read the public key file `{path}`: {e}"))
}

/// Parses a PEM public key (SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY` or a `CERTIFICATE`).
///
/// Error messages never contain the key.
pub(crate) fn parse_public_key(pem: &[u8]) -> Result<PublicKey, String> {
    if std::str::from_utf8(pem).is_ok_and(|s| s.contains("PRIVATE KEY")) {
        return Err("this is a private key; configure the public key only".to_owned());
    }
    let candidates = [DecodingKey::from_rsa_pem(pem), DecodingKey::from_ec_pem(pem), DecodingKey::from_ed_pem(pem)];
    let key = candidates
        .into_iter()
        .find_map(Result::ok)
        .ok_or_else(|| "not a PEM-encoded RSA, EC or Ed25519 public key".to_owned())?;
    // The PEM decoders only check the ASN.1 structure: extracting the components parses the key
    // for real (and tells the EC curve).
    let jwk = Jwk::from_decoding_key(&key, None).map_err(|_| "the public key cannot be parsed".to_owned())?;
    let family = key.family();
    let (curve, default_alg) = match (&jwk.algorithm, family) {
        (AlgorithmParameters::EllipticCurve(p), _) => {
            let alg = match p.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err("unsupported EC curve (use P-256 or P-384)".to_owned()),
            };
            (Some(p.curve.clone()), alg)
        }
        (_, AlgorithmFamily::Rsa) => (None, Algorithm::RS256),
        (_, AlgorithmFamily::Ed) => (None, Algorithm::EdDSA),
        _ => return Err("not a PEM-encoded RSA, EC or Ed25519 public key".to_owned()),
    };
    Ok(PublicKey { key, family, curve, default_alg })
}

/// Parses an algorithm name (`HS256`, `RS256`, ..., `EdDSA`), case-sensitively as in JOSE.
pub(crate) fn parse_alg(name: &str) -> Option<Algorithm> {
    Algorithm::from_str(name).ok()
}

/// The JOSE name of an algorithm.
pub(crate) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        // `Algorithm` is non-exhaustive.
        _ => "unknown",
    }
}

/// Whether an ECDSA algorithm fits a curve (`ES256` needs P-256, `ES384` needs P-384).
pub(crate) fn curve_fits(alg: Algorithm, curve: Option<&EllipticCurve>) -> bool {
    match (alg, curve) {
        (Algorithm::ES256, Some(c)) => *c == EllipticCurve::P256,
        (Algorithm::ES384, Some(c)) => *c == EllipticCurve::P384,
        _ => true,
    }
}

/// Decodes unpadded base64url (RFC 4648 §5), strictly: no padding, no other characters.
pub(crate) fn b64url_decode(input: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'-' => Some(62),
            b'_' => Some(63),
            _ => None,
        }
    }
    let bytes = input.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc: u32 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let [_, b0, b1, b2] = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&[b0, b1, b2]),
            3 => out.extend_from_slice(&[b0, b1]),
            2 => out.push(b0),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_known_vectors() {
        assert_eq!(b64url_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(b64url_decode("Zg").as_deref(), Some(&b"f"[..]));
        assert_eq!(b64url_decode("Zm8").as_deref(), Some(&b"fo"[..]));
        assert_eq!(b64url_decode("Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(b64url_decode("Zm9vYg").as_deref(), Some(&b"foob"[..]));
        assert_eq!(b64url_decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(b64url_decode("eyJhbGciOiJub25lIn0").as_deref(), Some(&br#"{"alg":"none"}"#[..]));
    }

    #[test]
    fn base64url_rejects_bad_input() {
        assert_eq!(b64url_decode("Zg=="), None);
        assert_eq!(b64url_decode("Z"), None);
        assert_eq!(b64url_decode("Zm9v+"), None);
        assert_eq!(b64url_decode("Zm/v"), None);
        assert_eq!(b64url_decode("é"), None);
    }

    #[test]
    fn garbage_pem_is_rejected_without_echoing_it() {
        let err = match parse_public_key(b"-----BEGIN PUBLIC KEY-----\nc2VjcmV0\n-----END PUBLIC KEY-----\n") {
            Ok(_) => panic!("garbage accepted"),
            Err(e) => e,
        };
        assert!(!err.contains("c2VjcmV0"));
    }

    #[test]
    fn missing_file_is_reported() {
        let err = load_pem("/nonexistent/key.pem").unwrap_err();
        assert!(err.contains("/nonexistent/key.pem"));
    }
}
