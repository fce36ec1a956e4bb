//! What the tests of several modules share: configs parsed from text, bcrypt hashes and
//! `Authorization` headers made quickly, and a directory of certificates made with `openssl`.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use hyper::header::HeaderValue;

use crate::{AuthResult, ConfigError, LoadError, WebConfig};

/// A temporary directory with a CA, a server certificate for localhost and 127.0.0.1, a
/// client certificate, and a second CA that signed a client certificate of its own; all
/// made with the `openssl` CLI. Removed on drop.
pub(crate) struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    pub(crate) fn new(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("gae-webconfig-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fixture = Fixture { dir };
        fixture.ca("ca");
        fixture.leaf(
            "server",
            "ca",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        );
        fixture.leaf(
            "client",
            "ca",
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
        );
        fixture.ca("other-ca");
        fixture.leaf(
            "stranger",
            "other-ca",
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
        );
        fixture
    }

    pub(crate) fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("the openssl CLI runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    fn leaf(&self, name: &str, ca: &str, extensions: &str) {
        self.write(&format!("{name}.ext"), extensions);
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    pub(crate) fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// Writes `web.yml` and loads it.
    pub(crate) fn load(&self, yaml: &str) -> Result<WebConfig, LoadError> {
        WebConfig::load(&self.write("web.yml", yaml))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A config without files: parsed from text, with no directory to look in.
pub(crate) fn parse(yaml: &str) -> Result<WebConfig, ConfigError> {
    WebConfig::parse(yaml, Path::new("/nonexistent"), Path::new("web.yml"))
}

/// A bcrypt hash at the lowest cost (fast in tests), in htpasswd's `$2y$` form.
pub(crate) fn hash(password: &str) -> String {
    bcrypt::hash_with_salt(password, 4, *b"0123456789abcdef")
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY)
}

/// The `Authorization` header of `user` and `password`.
pub(crate) fn basic(user: &str, password: &str) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
}

impl WebConfig {
    /// [`WebConfig::authorize`] without a runtime: bcrypt on this thread.
    pub(crate) fn check_basic_auth(&self, authorization: Option<&HeaderValue>) -> AuthResult {
        self.auth.as_ref()?.check_here(authorization)
    }
}
