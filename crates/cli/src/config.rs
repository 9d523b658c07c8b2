//! Configuration: defaults, then the TOML file, then `PORTCULLIS_…` environment
//! variables; validated once at start-up with errors that name the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use portcullis_core::CoreSettings;
use portcullis_protocol::SigningAlg;
use serde::Deserialize;

/// The file's shape; every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub issuer: Option<String>,
    pub access_token_audience: Option<String>,
    pub public_addr: Option<String>,
    pub admin_addr: Option<String>,
    pub database_url: Option<String>,
    pub data_dir: Option<String>,
    pub kek: Option<String>,
    pub kek_file: Option<String>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub signing_alg: Option<String>,
    pub access_token_ttl: Option<i64>,
    pub refresh_token_ttl: Option<i64>,
    pub id_token_ttl: Option<i64>,
    pub code_ttl: Option<i64>,
    pub session_ttl: Option<i64>,
    pub max_concurrent_password_hashes: Option<i64>,
}

/// A setting that failed validation: `setting` is the key as written in the file.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {setting}{source_note}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub source_note: String,
    pub message: String,
}

fn cfg_err(setting: &str, origin: &Origins, message: impl Into<String>) -> ConfigError {
    let source_note = match origin.get(setting) {
        Some(o) => format!(" (from {o})"),
        None => String::new(),
    };
    ConfigError {
        setting: setting.to_owned(),
        source_note,
        message: message.into(),
    }
}

/// Where each setting came from, for error messages.
type Origins = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// Where the key-encryption key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// The key itself (from `PORTCULLIS_KEK` or `kek`).
    Inline(String),
    /// A file holding the key; must exist.
    File(PathBuf),
    /// The embedded default: `<data_dir>/kek`, generated on first start.
    Generated(PathBuf),
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub kek: KekSource,
    pub log_format: LogFormat,
    pub log_level: String,
    pub core: CoreSettings,
}

const ENV_KEYS: &[&str] = &[
    "issuer",
    "access_token_audience",
    "public_addr",
    "admin_addr",
    "database_url",
    "data_dir",
    "kek",
    "kek_file",
    "log_format",
    "log_level",
    "signing_alg",
    "access_token_ttl",
    "refresh_token_ttl",
    "id_token_ttl",
    "code_ttl",
    "session_ttl",
    "max_concurrent_password_hashes",
];

impl RawConfig {
    /// Reads the file: `path` if given (must exist), else `portcullis.toml` if present.
    pub fn from_file(path: Option<&Path>, origins: &mut Origins) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("portcullis.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(ConfigError {
                    setting: "--config".into(),
                    source_note: String::new(),
                    message: format!("cannot read {}: {e}", path.display()),
                });
            }
        };
        let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError {
            setting: format!("{}", path.display()),
            source_note: String::new(),
            message: e.message().to_owned(),
        })?;
        let file = path.display().to_string();
        for key in ENV_KEYS {
            if raw.is_set(key) {
                origins.insert((*key).to_owned(), file.clone());
            }
        }
        Ok(raw)
    }

    fn is_set(&self, key: &str) -> bool {
        match key {
            "issuer" => self.issuer.is_some(),
            "access_token_audience" => self.access_token_audience.is_some(),
            "public_addr" => self.public_addr.is_some(),
            "admin_addr" => self.admin_addr.is_some(),
            "database_url" => self.database_url.is_some(),
            "data_dir" => self.data_dir.is_some(),
            "kek" => self.kek.is_some(),
            "kek_file" => self.kek_file.is_some(),
            "log_format" => self.log_format.is_some(),
            "log_level" => self.log_level.is_some(),
            "signing_alg" => self.signing_alg.is_some(),
            "access_token_ttl" => self.access_token_ttl.is_some(),
            "refresh_token_ttl" => self.refresh_token_ttl.is_some(),
            "id_token_ttl" => self.id_token_ttl.is_some(),
            "code_ttl" => self.code_ttl.is_some(),
            "session_ttl" => self.session_ttl.is_some(),
            "max_concurrent_password_hashes" => self.max_concurrent_password_hashes.is_some(),
            _ => false,
        }
    }

    /// Applies `PORTCULLIS_<KEY>` variables (and `DATABASE_URL` as a fallback for
    /// `database_url`). An unknown `PORTCULLIS_…` variable is an error, so a typo does
    /// not silently leave a default in place.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
        origins: &mut Origins,
    ) -> Result<(), ConfigError> {
        let mut database_url_fallback = None;
        for (name, value) in vars {
            if name == "DATABASE_URL" {
                database_url_fallback = Some(value);
                continue;
            }
            let Some(key) = name.strip_prefix("PORTCULLIS_") else {
                continue;
            };
            // Variables read by the test suite and tools, not by the server.
            if key.starts_with("TEST_") || key.starts_with("BENCH_") {
                continue;
            }
            let key = key.to_ascii_lowercase();
            if !ENV_KEYS.contains(&key.as_str()) {
                return Err(ConfigError {
                    setting: name.clone(),
                    source_note: String::new(),
                    message: format!("unknown setting; known: {}", ENV_KEYS.join(", ")),
                });
            }
            origins.insert(key.clone(), name.clone());
            let int = |v: &str| -> Result<i64, ConfigError> {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| cfg_err(&key, origins, format!("{v:?} is not a whole number of seconds")))
            };
            match key.as_str() {
                "issuer" => self.issuer = Some(value),
                "access_token_audience" => self.access_token_audience = Some(value),
                "public_addr" => self.public_addr = Some(value),
                "admin_addr" => self.admin_addr = Some(value),
                "database_url" => self.database_url = Some(value),
                "data_dir" => self.data_dir = Some(value),
                "kek" => self.kek = Some(value),
                "kek_file" => self.kek_file = Some(value),
                "log_format" => self.log_format = Some(value),
                "log_level" => self.log_level = Some(value),
                "signing_alg" => self.signing_alg = Some(value),
                "access_token_ttl" => self.access_token_ttl = Some(int(&value)?),
                "refresh_token_ttl" => self.refresh_token_ttl = Some(int(&value)?),
                "id_token_ttl" => self.id_token_ttl = Some(int(&value)?),
                "code_ttl" => self.code_ttl = Some(int(&value)?),
                "session_ttl" => self.session_ttl = Some(int(&value)?),
                "max_concurrent_password_hashes" => self.max_concurrent_password_hashes = Some(int(&value)?),
                _ => {}
            }
        }
        if self.database_url.is_none()
            && let Some(url) = database_url_fallback
        {
            origins.insert("database_url".into(), "DATABASE_URL".into());
            self.database_url = Some(url);
        }
        Ok(())
    }

    /// Validates and fills defaults.
    pub fn validate(self, origins: &Origins) -> Result<Settings, ConfigError> {
        let issuer = self.issuer.unwrap_or_else(|| "http://localhost:9090".into());
        let url = url::Url::parse(&issuer)
            .map_err(|e| cfg_err("issuer", origins, format!("{issuer:?} is not a URL: {e}")))?;
        // OIDC Discovery §3 / RFC 8414 §2: https, no query, no fragment.
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(cfg_err("issuer", origins, "must be an http(s) URL with a host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(cfg_err("issuer", origins, "must not contain a query or fragment"));
        }
        if url.path() != "/" {
            return Err(cfg_err(
                "issuer",
                origins,
                "must not have a path (Portcullis serves at the root)",
            ));
        }
        let addr = |key: &str, v: Option<String>, default: &str| -> Result<SocketAddr, ConfigError> {
            let v = v.unwrap_or_else(|| default.to_owned());
            v.parse()
                .map_err(|_| cfg_err(key, origins, format!("{v:?} is not an address like 127.0.0.1:9090")))
        };
        let public_addr = addr("public_addr", self.public_addr, "0.0.0.0:9090")?;
        let admin_addr = addr("admin_addr", self.admin_addr, "127.0.0.1:9091")?;
        let data_dir = PathBuf::from(self.data_dir.unwrap_or_else(|| "./data".into()));
        let database_url = match self.database_url {
            Some(u) => {
                if !(u.starts_with("postgres://") || u.starts_with("postgresql://") || u.starts_with("sqlite:")) {
                    return Err(cfg_err(
                        "database_url",
                        origins,
                        "must start with postgres://, postgresql:// or sqlite:",
                    ));
                }
                u
            }
            None => format!("sqlite://{}?mode=rwc", data_dir.join("portcullis.db").display()),
        };
        let is_postgres = !database_url.starts_with("sqlite:");
        let kek = match (self.kek, self.kek_file) {
            (Some(_), Some(_)) => return Err(cfg_err("kek", origins, "set kek or kek_file, not both")),
            (Some(k), None) => {
                portcullis_core::crypto::Kek::parse(&k)
                    .map_err(|e| cfg_err("kek", origins, format!("invalid key-encryption key: {e}")))?;
                KekSource::Inline(k)
            }
            (None, Some(f)) => {
                let p = PathBuf::from(&f);
                std::fs::metadata(&p).map_err(|e| cfg_err("kek_file", origins, format!("cannot read {f}: {e}")))?;
                KekSource::File(p)
            }
            (None, None) if is_postgres => {
                return Err(cfg_err(
                    "kek",
                    origins,
                    "with PostgreSQL set PORTCULLIS_KEK or kek_file, so every node decrypts the same signing keys",
                ));
            }
            (None, None) => KekSource::Generated(data_dir.join("kek")),
        };
        let log_format = match self.log_format.as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(cfg_err(
                    "log_format",
                    origins,
                    format!("{other:?}: expected human or json"),
                ));
            }
        };
        let log_level = self.log_level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(cfg_err(
                "log_level",
                origins,
                format!("{log_level:?} is not a log filter (e.g. info, debug)"),
            ));
        }
        let mut core = CoreSettings::for_issuer(&issuer);
        if let Some(aud) = self.access_token_audience {
            if aud.trim().is_empty() || aud.len() > 512 {
                return Err(cfg_err("access_token_audience", origins, "must be 1 to 512 characters"));
            }
            core.access_token_audience = aud;
        }
        if let Some(a) = self.signing_alg {
            core.signing_alg = SigningAlg::parse(&a).map_err(|e| cfg_err("signing_alg", origins, e.0))?;
        }
        let ttl = |key: &str, v: Option<i64>, min: i64, max: i64| -> Result<Option<time::Duration>, ConfigError> {
            match v {
                None => Ok(None),
                Some(s) if (min..=max).contains(&s) => Ok(Some(time::Duration::seconds(s))),
                Some(s) => Err(cfg_err(
                    key,
                    origins,
                    format!("{s} is out of range {min}..={max} seconds"),
                )),
            }
        };
        if let Some(d) = ttl("access_token_ttl", self.access_token_ttl, 60, 86_400)? {
            core.access_token_ttl = d;
        }
        if let Some(d) = ttl("refresh_token_ttl", self.refresh_token_ttl, 300, 31_536_000)? {
            core.refresh_token_ttl = d;
        }
        if let Some(d) = ttl("id_token_ttl", self.id_token_ttl, 60, 86_400)? {
            core.id_token_ttl = d;
        }
        if let Some(d) = ttl("code_ttl", self.code_ttl, 10, 600)? {
            core.code_ttl = d;
        }
        if let Some(d) = ttl("session_ttl", self.session_ttl, 60, 2_592_000)? {
            core.session_ttl = d;
        }
        if let Some(n) = self.max_concurrent_password_hashes {
            if !(1..=256).contains(&n) {
                return Err(cfg_err(
                    "max_concurrent_password_hashes",
                    origins,
                    "must be between 1 and 256",
                ));
            }
            core.max_concurrent_password_hashes = usize::try_from(n).unwrap_or(4);
        }
        Ok(Settings {
            public_addr,
            admin_addr,
            database_url,
            data_dir,
            kek,
            log_format,
            log_level,
            core,
        })
    }
}

impl Settings {
    /// Loads configuration the way `portcullis` does: file, then environment.
    pub fn load(config: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(config, std::env::vars())
    }

    pub fn load_from(
        config: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut origins = Origins::new();
        let mut raw = RawConfig::from_file(config, &mut origins)?;
        raw.apply_env(vars, &mut origins)?;
        raw.validate(&origins)
    }

    /// Settings for tests: SQLite at `database_url`, an inline key, the given issuer.
    pub fn for_test(issuer: &str, database_url: &str, kek: &str) -> Self {
        Self {
            public_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.to_owned(),
            data_dir: std::env::temp_dir(),
            kek: KekSource::Inline(kek.to_owned()),
            log_format: LogFormat::Human,
            log_level: "warn".into(),
            core: CoreSettings::for_issuer(issuer),
        }
    }

    pub fn is_postgres(&self) -> bool {
        !self.database_url.starts_with("sqlite:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load_from(None, vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn defaults_work_with_nothing_set() {
        let s = load(&[]).unwrap();
        assert_eq!(s.core.issuer, "http://localhost:9090");
        assert_eq!(s.public_addr.to_string(), "0.0.0.0:9090");
        assert_eq!(s.admin_addr.to_string(), "127.0.0.1:9091");
        assert!(s.database_url.starts_with("sqlite://./data/portcullis.db"));
        assert_eq!(s.kek, KekSource::Generated(PathBuf::from("./data/kek")));
    }

    #[test]
    fn errors_name_the_setting_and_its_source() {
        let e = load(&[("PORTCULLIS_ISSUER", "https://id.example/?x=1")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configuration: issuer (from PORTCULLIS_ISSUER): must not contain a query or fragment"
        );
        let e = load(&[("PORTCULLIS_ISSUER", "not a url")]).unwrap_err();
        assert_eq!(e.setting, "issuer");
        let e = load(&[("PORTCULLIS_ISSUER", "https://id.example/#frag")]).unwrap_err();
        assert_eq!(e.setting, "issuer");
        let e = load(&[("PORTCULLIS_PUBLIC_ADDR", "nowhere")]).unwrap_err();
        assert_eq!(e.setting, "public_addr");
        let e = load(&[("PORTCULLIS_ISUER", "https://id.example")]).unwrap_err();
        assert_eq!(e.setting, "PORTCULLIS_ISUER");
        let e = load(&[("PORTCULLIS_DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(e.setting, "database_url");
        let e = load(&[("PORTCULLIS_DATABASE_URL", "postgres://localhost/x")]).unwrap_err();
        assert_eq!(e.setting, "kek");
        let e = load(&[("PORTCULLIS_KEK_FILE", "/nonexistent/kek")]).unwrap_err();
        assert_eq!(e.setting, "kek_file");
        let e = load(&[("PORTCULLIS_KEK", "tooshort")]).unwrap_err();
        assert_eq!(e.setting, "kek");
        let e = load(&[("PORTCULLIS_ACCESS_TOKEN_TTL", "ten")]).unwrap_err();
        assert_eq!(e.setting, "access_token_ttl");
        let e = load(&[("PORTCULLIS_ACCESS_TOKEN_TTL", "5")]).unwrap_err();
        assert_eq!(e.setting, "access_token_ttl");
        let e = load(&[("PORTCULLIS_LOG_FORMAT", "xml")]).unwrap_err();
        assert_eq!(e.setting, "log_format");
        let e = load(&[("PORTCULLIS_SIGNING_ALG", "HS256")]).unwrap_err();
        assert_eq!(e.setting, "signing_alg");
    }

    #[test]
    fn file_errors() {
        let dir = std::env::temp_dir().join(format!("portcullis-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.toml");
        let e = Settings::load_from(Some(&missing), Vec::new()).unwrap_err();
        assert_eq!(e.setting, "--config");
        let unknown = dir.join("unknown.toml");
        std::fs::write(&unknown, "isuer = \"https://x.example\"\n").unwrap();
        let e = Settings::load_from(Some(&unknown), Vec::new()).unwrap_err();
        assert!(e.to_string().contains("unknown field `isuer`"), "{e}");
        let good = dir.join("good.toml");
        std::fs::write(&good, "issuer = \"https://id.example\"\naccess_token_ttl = 300\n").unwrap();
        let s = Settings::load_from(Some(&good), vec![("PORTCULLIS_ACCESS_TOKEN_TTL".into(), "120".into())]).unwrap();
        assert_eq!(s.core.issuer, "https://id.example");
        assert_eq!(s.core.access_token_ttl, time::Duration::seconds(120));
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "issuer = \"https://id.example/?q\"\n").unwrap();
        let e = Settings::load_from(Some(&bad), Vec::new()).unwrap_err();
        assert!(e.to_string().contains("issuer (from "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
