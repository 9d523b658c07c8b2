//! The code flow in a real headless browser (Debian's `chromium`, driven through
//! `chromedriver`'s WebDriver API) against the real login and consent pages, with the
//! client's redirect URI served by the test on a loopback port.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use portcullis_tests::{Backend, both_backends, http, spawn_app};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use url::Url;

use crate::code_flow::PASSWORD;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: reqwest::Client,
    _profile: portcullis_tests::db::TempDirGuard,
}

impl Browser {
    pub async fn start() -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // Its own process group, so the browsers it starts can be stopped with it.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start chromedriver ({e}); install Debian's chromium and chromium-driver")
            });
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = portcullis_tests::db::TempDirGuard::new("portcullis-chromium").unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let resp: Value = client
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {resp}"))
            .to_owned();
        Self {
            driver,
            base,
            session,
            client,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.client.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if v["value"].get("error").is_some() {
            panic!("WebDriver {path}: {v}");
        }
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub async fn url(&self) -> Url {
        Url::parse(self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap()).unwrap()
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("element {css}: {v}"))
            .to_owned()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({})))
            .await;
    }

    /// The rendered text of the first element matching `css` (what a person would copy).
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Empties a text field or textarea.
    pub async fn clear(&self, css: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/clear"), Some(json!({})))
            .await;
    }

    /// Emulates a viewport of this size (for screenshots at a desktop width).
    pub async fn viewport(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false
            }})),
        )
        .await;
    }

    /// Saves a PNG of the page under `target/screenshots/`.
    pub async fn screenshot(&self, name: &str) {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64.as_str().unwrap()).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Waits (up to 5 s) until an element matching `css` is on the page: after a click
    /// whose answer is a page at the same path, `wait_for_path` cannot tell the new page
    /// from the old one.
    pub async fn wait_for(&self, css: &str) {
        let url = format!("{}/session/{}/element", self.base, self.session);
        for _ in 0..100 {
            let v: Value = self
                .client
                .post(&url)
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["value"].get("error").is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {css} on {}:\n{}", self.url().await, self.source().await);
    }

    pub async fn wait_for_path(&self, path: &str) -> Url {
        for _ in 0..100 {
            let u = self.url().await;
            if u.path() == path {
                return u;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "browser never reached {path}; it is at {}:\n{}",
            self.url().await,
            self.source().await
        );
    }
}

impl Browser {
    /// Ends the WebDriver session, which closes the browser.
    pub async fn quit(self) {
        let _ = self
            .client
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Whatever is left of the driver's process group (the browser after a failed
        // test) goes with it.
        // `--` is essential: procps-ng's kill reads `-1…` after a signal option as the
        // option `-1`, so `kill -KILL -12345` signals *every* process (kill(-1)) — which
        // took down PostgreSQL and every shell on the machine whenever chromedriver's pid
        // began with a 1.
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{}", self.driver.id()))
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The client's redirect endpoint: records the query of each request it gets.
pub(crate) async fn callback_server() -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/callback", listener.local_addr().unwrap().port());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                if let Some(target) = head.split_whitespace().nth(1) {
                    let _ = tx.send(target.to_owned());
                }
                let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 8\r\nconnection: close\r\n\r\nreturned").await;
            });
        }
    });
    (url, rx)
}

async fn code_flow_in_headless_chromium(backend: Backend) {
    let app = spawn_app(backend).await;
    let (redirect, mut hits) = callback_server().await;
    let (client, secret) = app.confidential_client(&redirect).await;
    app.user("grace", PASSWORD).await;
    let verifier = "chromium-verifier-".repeat(3);
    let challenge = portcullis_core::crypto::b64url(&portcullis_core::crypto::sha256(verifier.as_bytes()));
    let mut auth = Url::parse(&app.url("/authorize")).unwrap();
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.id.as_str())
        .append_pair("redirect_uri", &redirect)
        .append_pair("scope", "openid profile")
        .append_pair("state", "browser-state")
        .append_pair("nonce", "browser-nonce")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");

    let browser = Browser::start().await;
    browser.goto(auth.as_str()).await;
    browser.wait_for_path("/login").await;
    browser.screenshot("login").await;
    browser.type_into("#username", "grace").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_path("/consent").await;
    let page = browser.source().await;
    assert!(page.contains("Test App"), "the consent page names the client");
    browser.screenshot("consent").await;
    browser.click("#allow").await;
    let target = tokio::time::timeout(Duration::from_secs(10), hits.recv())
        .await
        .unwrap()
        .unwrap();
    let back = Url::parse(&format!("http://x{target}")).unwrap();
    let get = |n: &str| back.query_pairs().find(|(k, _)| k == n).map(|(_, v)| v.into_owned());
    assert_eq!(get("state").as_deref(), Some("browser-state"));
    assert_eq!(get("iss").as_deref(), Some(app.issuer.as_str()));
    let code = get("code").unwrap();
    let r = http()
        .post(app.url("/token"))
        .basic_auth(client.id.as_str(), Some(secret.expose()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    assert!(tokens["id_token"].is_string());

    // Allow clicked twice in a row: the first submission stands (static/forms.js) and the
    // client gets its code, not an error page about a request already answered.
    let pairs: Vec<(String, String)> = auth
        .query_pairs()
        .filter(|(k, _)| k != "state")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    auth.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("prompt", "consent")
        .append_pair("state", "twice");
    browser.goto(auth.as_str()).await;
    browser.wait_for_path("/consent").await;
    browser
        .call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({
                "script": "const b = document.getElementById('allow'); b.click(); setTimeout(() => b.click(), 30);",
                "args": [],
            })),
        )
        .await;
    let back = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            // The browser also asks the callback's origin for its favicon.
            let back = Url::parse(&format!("http://x{}", hits.recv().await.unwrap())).unwrap();
            if back.path() != "/favicon.ico" {
                break back;
            }
        }
    })
    .await
    .expect("the client got an answer");
    let get = |n: &str| back.query_pairs().find(|(k, _)| k == n).map(|(_, v)| v.into_owned());
    assert_eq!(get("state").as_deref(), Some("twice"), "{back}");
    assert!(get("code").is_some(), "{back}");
    browser.quit().await;
    app.stop().await;
}

both_backends!(code_flow_in_headless_chromium);
