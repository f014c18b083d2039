//! The web page of `colm serve` in a real browser: headless Chromium (Debian `chromium`) driven
//! through WebDriver (`chromedriver`, Debian `chromium-driver`; the `fantoccini` crate) against
//! `colm serve` hosting real models (gemma-3-270m as the client, qwen2.5-coder-0.5b as the
//! server) on a real GSM8K question, with API keys and an interaction log.
//!
//! `CHROMEDRIVER` names the driver (default `chromedriver` on the `PATH`), `CHROMIUM` the
//! browser (default `/usr/bin/chromium`). `bench/ui.sh` runs the ignored test, which writes the
//! screenshots under `docs/ui/` and the time to the first visible text.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CLIENT: &str = "gemma-3-270m";
const SERVER: &str = "qwen2.5-coder-0.5b-instruct";
const KEY: &str = "sk-acme";

/// A chromedriver on a free loopback port; killed when dropped, with the browser it started
/// (found by its own profile directory), however the test ends.
struct Driver {
    child: Child,
    url: String,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.profile.path())
            .status();
    }
}

async fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let mut child = Command::new(&program)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (Debian: apt-get install chromium-driver)"));
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{url}/status")).send().await {
            if r.status().is_success() {
                let profile = tempfile::tempdir().unwrap();
                return Driver {
                    child,
                    url,
                    profile,
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{program} did not start on port {port}");
}

/// A headless Chromium session of `driver`, keeping the browser's console log.
async fn browser(driver: &Driver) -> Client {
    let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let caps = json!({
        "browserName": "chrome",
        "goog:loggingPrefs": {"browser": "ALL"},
        "goog:chromeOptions": {
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1366,900",
                     format!("--user-data-dir={}", driver.profile.path().display())],
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap()
}

/// The browser's console messages since the last call (chromedriver's log endpoint).
async fn console(driver: &Driver, client: &Client) -> Vec<Value> {
    let id = client.session_id().await.unwrap().unwrap();
    let r: Value = reqwest::Client::new()
        .post(format!("{}/session/{id}/se/log", driver.url))
        .json(&json!({"type": "browser"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["value"].as_array().cloned().unwrap_or_default()
}

/// Console errors, leaving out the network lines of the 401s the key prompt is about.
fn errors(log: &[Value]) -> Vec<String> {
    log.iter()
        .filter(|m| m["level"] == "SEVERE")
        .map(|m| m["message"].as_str().unwrap_or_default().to_owned())
        .filter(|m| !m.contains("status of 401"))
        .collect()
}

/// `colm serve` with the two models, a virtual model `colm` (the client drafts and refines,
/// the server writes the reference; `--draft always`: the client drafts at once, as the page's
/// four columns show, rather than only when the guidance is late), keys and a log.
fn serve(dir: &std::path::Path) -> common::Proc {
    let keys = dir.join("keys");
    std::fs::write(&keys, format!("acme {KEY}\n")).unwrap();
    let log = dir.join("log.sqlite");
    common::start(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--model",
        CLIENT,
        "--model",
        SERVER,
        "--colm-client",
        CLIENT,
        "--colm-server",
        SERVER,
        "--draft",
        "always",
        "--api-key-file",
        keys.to_str().unwrap(),
        "--interaction-log",
        log.to_str().unwrap(),
        "--default-max-tokens",
        "64",
    ])
}

async fn js(client: &Client, script: &str) -> Value {
    client.execute(script, Vec::new()).await.unwrap()
}

/// Waits until `script` returns something truthy (up to `secs`), and returns it.
async fn until(client: &Client, script: &str, secs: u64) -> Value {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = js(client, script).await;
        if !(v.is_null() || v == false || v == "" || v == 0) {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for: {script}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the element with id `id`.
async fn click(client: &Client, id: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Writes a screenshot of the page to `dir/name`.
async fn shot(client: &Client, dir: &std::path::Path, name: &str) {
    std::fs::write(dir.join(name), client.screenshot().await.unwrap()).unwrap();
}

/// Types the key into the prompt the page shows and submits it.
async fn give_key(client: &Client, key: &str) {
    until(
        client,
        "return document.getElementById('key-dialog').open",
        20,
    )
    .await;
    let input = client.find(Locator::Id("key-input")).await.unwrap();
    input.send_keys(key).await.unwrap();
    click(client, "key-save").await;
}

/// Gives the right key and waits for the models it lists, `colm` among them.
async fn sign_in(client: &Client) {
    give_key(client, KEY).await;
    until(
        client,
        "return [...document.getElementById('model').options].some(o => o.value === 'colm')",
        20,
    )
    .await;
}

/// Asks `query` of `model` in the Ask view; returns, while it runs, whether a draft's text was
/// seen before that draft had finished; then waits for the answer.
async fn ask(client: &Client, model: &str, query: &str) -> bool {
    js(
        client,
        &format!(
            "document.getElementById('model').value = {};
             document.getElementById('query').value = {}; return true",
            json!(model),
            json!(query)
        ),
    )
    .await;
    click(client, "ask").await;
    let mut live = false;
    let end = Instant::now() + Duration::from_secs(600);
    loop {
        let v = js(
            client,
            "const d = document.querySelector('#round [data-step=draft]');
             return { draft: d ? { running: d.classList.contains('running'),
                                   text: d.querySelector('.text').textContent.length } : null,
                      done: document.getElementById('status').textContent.startsWith('Done'),
                      notice: document.getElementById('notice').hidden ? ''
                              : document.getElementById('notice').textContent };",
        )
        .await;
        assert_eq!(v["notice"], "", "the page showed an error");
        if v["draft"]["running"] == true && v["draft"]["text"].as_u64() > Some(0) {
            live = true;
        }
        if v["done"] == true {
            return live;
        }
        assert!(Instant::now() < end, "no answer: {v}");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// The page end to end: a wrong key is refused with a clear message; with the right key a
/// `colm` question fills in the four columns live (a draft's text shows before the draft has
/// finished) and ends with an answer; thumbs up lands in the log as feedback on that record;
/// the records view opens its transcript; the console holds no error.
#[tokio::test]
async fn the_page_shows_a_collaboration_live_and_its_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let driver = driver().await;
    let client = browser(&driver).await;
    client.goto(&format!("{}/", server.base)).await.unwrap();

    // No key yet: the page asks for one; a wrong one is refused in words.
    give_key(&client, "sk-wrong").await;
    let why = until(
        &client,
        "const d = document.getElementById('key-dialog'); \
         return d.open && document.getElementById('key-why').textContent.includes('refused') \
         && document.getElementById('key-why').textContent",
        20,
    )
    .await;
    assert!(why.as_str().unwrap().contains("refused this key"), "{why}");
    js(
        &client,
        "document.getElementById('key-input').value = ''; return 1",
    )
    .await;
    sign_in(&client).await;
    // The key is in session storage, never in the address.
    let url = client.current_url().await.unwrap();
    assert!(!url.as_str().contains(KEY), "{url}");

    let question = common::gsm8k_question(1);
    let live = ask(&client, "colm", &question).await;
    assert!(live, "no draft text showed before the draft finished");
    let shown = js(
        &client,
        "const n = (s) => [...document.querySelectorAll(`#round [data-step=${s}] .text`)]
                         .filter(t => t.textContent.trim()).length;
         return { draft: n('draft'), reference: n('reference'), guidance: n('guidance'),
                  refinement: n('refinement'),
                  answer: document.querySelector('#round .answer .text').textContent };",
    )
    .await;
    for step in ["draft", "reference", "guidance", "refinement"] {
        assert!(shown[step].as_u64() >= Some(1), "no {step} text: {shown}");
    }
    assert!(
        !shown["answer"].as_str().unwrap().trim().is_empty(),
        "{shown}"
    );

    // Thumbs up: recorded on this request's record.
    client
        .find(Locator::Css("#round button[data-outcome=right]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &client,
        "return document.querySelector('#round .feedback').textContent.includes('recorded as right')",
        20,
    )
    .await;
    let http = reqwest::Client::new();
    let list: Value = http
        .get(format!("{}/v1/colm/records?limit=1", server.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let newest = &list["data"][0];
    assert_eq!(newest["model"], "colm", "{list}");
    assert_eq!(newest["feedback"]["outcome"], "right", "{list}");

    // The records view lists it and opens its transcript.
    click(&client, "tab-records").await;
    let open = client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&format!(
            "button.open-record[data-id='{}']",
            newest["id"].as_str().unwrap()
        )))
        .await
        .unwrap();
    open.click().await.unwrap();
    let steps = until(
        &client,
        "const s = [...document.querySelectorAll('#record-detail [data-step]')];
         return s.length >= 4 && s.map(e => e.dataset.step + ':' +
                (e.querySelector('.text').textContent.trim().length > 0)).join(' ');",
        20,
    )
    .await;
    for step in [
        "draft:true",
        "reference:true",
        "guidance:true",
        "refinement:true",
    ] {
        assert!(steps.as_str().unwrap().contains(step), "{steps}");
    }

    let log = console(&driver, &client).await;
    assert_eq!(errors(&log), Vec::<String>::new(), "{log:?}");
    client.close().await.unwrap();
}

/// Median of `v` (sorted in place).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Screenshots and the time to the first visible text (`bench/ui.sh`, which sets `UI_RUNS`,
/// `UI_SHOTS`, `UI_REPORT`, `UI_MACHINE`, `UI_VERSION`): the main views at desktop and phone
/// width under `UI_SHOTS`; then, interleaved, `UI_RUNS` questions asked of `colm` (time from
/// pressing "Ask" to the draft's first visible text) and of the bare client model (to the
/// answer's first visible text), written to `UI_REPORT`.
#[tokio::test]
#[ignore = "a benchmark: run by bench/ui.sh"]
async fn screenshots_and_time_to_first_text() {
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set by bench/ui.sh"));
    let runs: usize = env("UI_RUNS").parse().unwrap();
    let shots = std::path::PathBuf::from(env("UI_SHOTS"));
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let driver = driver().await;
    let client = browser(&driver).await;
    client.goto(&format!("{}/", server.base)).await.unwrap();
    sign_in(&client).await;
    let (mut colm, mut bare) = (Vec::new(), Vec::new());
    for n in 1..=runs {
        let question = common::gsm8k_question(n);
        ask(&client, "colm", &question).await;
        let t = js(&client, "return window.colmTimings").await;
        colm.push(t["firstDraftText"].as_f64().unwrap() - t["asked"].as_f64().unwrap());
        if n == 1 {
            shot(&client, &shots, "ask.png").await;
            client.set_window_size(390, 844).await.unwrap();
            shot(&client, &shots, "ask-phone.png").await;
            client.set_window_size(1366, 900).await.unwrap();
        }
        ask(&client, CLIENT, &question).await;
        let t = js(&client, "return window.colmTimings").await;
        bare.push(t["firstText"].as_f64().unwrap() - t["asked"].as_f64().unwrap());
    }
    // The side-by-side view and the records view with a transcript open.
    click(&client, "tab-compare").await;
    js(
        &client,
        &format!(
            "document.getElementById('pick-client').value = {};
             document.getElementById('pick-server').value = {};
             document.getElementById('pick-colm').value = 'colm';
             document.getElementById('compare-query').value = {}; return 1",
            json!(CLIENT),
            json!(SERVER),
            json!(common::gsm8k_question(1))
        ),
    )
    .await;
    click(&client, "compare").await;
    until(
        &client,
        "return document.getElementById('compare-status').textContent === 'Done.'",
        900,
    )
    .await;
    shot(&client, &shots, "compare.png").await;
    click(&client, "tab-records").await;
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("button.open-record"))
        .await
        .unwrap();
    js(
        &client,
        "[...document.querySelectorAll('#records-list tr')].find(r => r.textContent.includes('colm'))
           .querySelector('button').click(); return 1",
    )
    .await;
    until(
        &client,
        "return document.querySelectorAll('#record-detail [data-step]').length >= 4",
        20,
    )
    .await;
    shot(&client, &shots, "records.png").await;
    client.close().await.unwrap();

    let list = |v: &[f64]| {
        v.iter()
            .map(|ms| format!("{:.0}", ms))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (colm_p50, bare_p50) = (median(&mut colm.clone()), median(&mut bare.clone()));
    let report = format!(
        "# The web page: time to the first visible text\n\n\
         - date: {date}; machine: {machine}; {version}\n\
         - command: `RUNS={runs} bench/ui.sh` (headless Chromium through chromedriver; `colm serve \
         --model {CLIENT} --model {SERVER} --colm-client {CLIENT} --colm-server {SERVER} \
         --default-max-tokens 64`)\n\
         - GSM8K dev questions 1–{runs}, each asked of `colm` then of the bare `{CLIENT}`, \
         interleaved; time from pressing \"Ask\" to the first text on the page \
         (`window.colmTimings`, ms)\n\n\
         | asked | what shows first | p50 ms | runs (ms) |\n|---|---|---:|---|\n\
         | `colm` (draft by {CLIENT}, reference by {SERVER} at the same time) | the draft's first text | {colm_p50:.0} | {} |\n\
         | `{CLIENT}` alone | the answer's first text | {bare_p50:.0} | {} |\n\n\
         Screenshots: `docs/ui/ask.png`, `docs/ui/ask-phone.png`, `docs/ui/compare.png`, \
         `docs/ui/records.png`.\n\n\
         Summary: the draft's first text shows {colm_p50:.0} ms after \"Ask\" for `colm` (p50 of \
         {runs}), the bare model's first text {bare_p50:.0} ms ({:.2}×).\n",
        list(&colm),
        list(&bare),
        colm_p50 / bare_p50,
        date = String::from_utf8(Command::new("date").arg("-u").arg("+%Y-%m-%d").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned(),
        machine = env("UI_MACHINE"),
        version = env("UI_VERSION"),
    );
    std::fs::write(env("UI_REPORT"), report).unwrap();
}
