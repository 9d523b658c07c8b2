//! Just enough HTML form handling to drive the login and consent pages like a browser
//! without JavaScript: find a POST form, keep its hidden fields, submit it.

use reqwest::Client;
use url::Url;

/// A form found in a page.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: Url,
    pub fields: Vec<(String, String)>,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(html_unescape(&tag[start..end]))
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The POST forms in `html`, in document order, with their hidden inputs.
pub fn forms(page_url: &Url, html: &str) -> Vec<Form> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<form") {
        let after = &rest[start..];
        let end = after.find("</form>").unwrap_or(after.len());
        let body = &after[..end];
        let open_end = body.find('>').unwrap_or(body.len());
        let open = &body[..open_end];
        let method = attr(open, "method").unwrap_or_default().to_ascii_lowercase();
        if method == "post" {
            let action = attr(open, "action").unwrap_or_default();
            let action = page_url.join(&action).unwrap();
            let mut fields = Vec::new();
            let mut inputs = body;
            while let Some(i) = inputs.find("<input") {
                let tag_end = inputs[i..].find('>').map(|e| i + e).unwrap_or(inputs.len());
                let tag = &inputs[i..tag_end];
                if attr(tag, "type").as_deref() == Some("hidden")
                    && let Some(name) = attr(tag, "name")
                {
                    fields.push((name, attr(tag, "value").unwrap_or_default()));
                }
                inputs = &inputs[tag_end..];
            }
            out.push(Form { action, fields });
        }
        rest = &after[end..];
    }
    out
}

/// Submits the first POST form of `html` with `extra` fields added.
pub async fn submit(browser: &Client, page_url: &Url, html: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let form = forms(page_url, html)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no POST form in page:\n{html}"));
    submit_form(browser, &form, extra).await
}

pub async fn submit_form(browser: &Client, form: &Form, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut fields = form.fields.clone();
    for (k, v) in extra {
        fields.retain(|(n, _)| n != k);
        fields.push(((*k).to_owned(), (*v).to_owned()));
    }
    browser.post(form.action.clone()).form(&fields).send().await.unwrap()
}

/// `Location` of a redirect, resolved against `base`.
pub fn location(base: &Url, resp: &reqwest::Response) -> Url {
    assert!(
        resp.status().is_redirection(),
        "expected a redirect, got {}",
        resp.status()
    );
    let loc = resp.headers().get("location").unwrap().to_str().unwrap();
    base.join(loc).unwrap()
}

/// Follows redirects within the issuer (login, consent pages) until one leaves it,
/// returning the final URL that points elsewhere — or the page reached, with its URL.
pub async fn follow(browser: &Client, issuer: &Url, mut resp: reqwest::Response, mut url: Url) -> Step {
    loop {
        if resp.status().is_redirection() {
            let next = location(&url, &resp);
            if next.origin() != issuer.origin() {
                return Step::LeftIssuer(next);
            }
            url = next;
            resp = browser.get(url.clone()).send().await.unwrap();
        } else {
            let status = resp.status().as_u16();
            let html = resp.text().await.unwrap();
            return Step::Page { url, status, html };
        }
    }
}

#[derive(Debug)]
pub enum Step {
    /// A redirect to somewhere other than the issuer (the client's redirect URI).
    LeftIssuer(Url),
    /// A page of the issuer.
    Page { url: Url, status: u16, html: String },
}

/// Query parameter `name` of `url`.
pub fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
