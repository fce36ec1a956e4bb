//! The web config file as written: the YAML sections of exporter-toolkit's format, strict about
//! unknown keys, with the two maps (`basic_auth_users`, `http_server_config.headers`) read in
//! file order and refusing a key given twice. The modules of each section validate them.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename = "web_config")]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) tls_server_config: Option<RawTls>,
    #[serde(default)]
    pub(crate) http_server_config: Option<RawHttp>,
    #[serde(default, deserialize_with = "unique_map")]
    pub(crate) basic_auth_users: Option<Vec<(String, String)>>,
    #[serde(default)]
    pub(crate) rate_limit: Option<RawRateLimit>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename = "rate_limit")]
pub(crate) struct RawRateLimit {
    #[serde(default)]
    pub(crate) interval: Option<Scalar>,
    #[serde(default)]
    pub(crate) burst: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename = "tls_server_config")]
pub(crate) struct RawTls {
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) client_ca: Option<String>,
    pub(crate) cert_file: Option<String>,
    pub(crate) key_file: Option<String>,
    pub(crate) client_auth_type: Option<String>,
    pub(crate) client_ca_file: Option<String>,
    pub(crate) client_allowed_sans: Option<Vec<String>>,
    pub(crate) min_version: Option<String>,
    pub(crate) max_version: Option<String>,
    pub(crate) cipher_suites: Option<Vec<String>>,
    pub(crate) prefer_server_cipher_suites: Option<bool>,
    pub(crate) curve_preferences: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename = "http_server_config")]
pub(crate) struct RawHttp {
    /// Accepted for compatibility; the server speaks HTTP/1.1 only.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) http2: Option<bool>,
    #[serde(default, deserialize_with = "unique_map")]
    pub(crate) headers: Option<Vec<(String, String)>>,
}

/// A YAML map of scalars to scalars, in file order, refusing a key given twice (as Go's strict
/// YAML does). Numbers and booleans are taken as their text (`X-XSS-Protection: 0`); null is "".
fn unique_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<(String, String)>>, D::Error> {
    struct MapVisitor;
    impl<'de> Visitor<'de> for MapVisitor {
        type Value = Option<Vec<(String, String)>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of names to values")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries: Vec<(String, String)> = Vec::new();
            while let Some((Scalar(key), Scalar(value))) = map.next_entry::<Scalar, Scalar>()? {
                if entries.iter().any(|(k, _)| *k == key) {
                    return Err(de::Error::custom(format!("`{key}` is given twice")));
                }
                entries.push((key, value));
            }
            Ok(Some(entries))
        }
    }
    deserializer.deserialize_option(MapVisitor)
}

/// A scalar taken as text.
pub(crate) struct Scalar(pub(crate) String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(String::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(String::new()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// Go's YAML leaves an absent and an empty string alike: both mean "not set".
pub(crate) fn set(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}
