//! The status page in a real browser: headless Chromium (Debian package `chromium`) loads
//! `http://admin/` from a running node, and the test reads what it rendered (the DOM
//! after its scripts ran) as a component connects and disconnects.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::component;
use crate::support::node::{ephemeral_config, Node};
use crate::support::wait_until;

/// Chromium's command line for one headless run against `url`, in its own profile.
fn chromium(profile: &Path, url: &str, action: &[&str]) -> String {
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(action)
        .arg(url)
        .output()
        .expect("chromium runs (Debian package chromium)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of the element with `id` in the rendered `dom` (its first text run).
fn text_of<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let after = &dom[start..];
    let open = after.find('>')? + 1;
    let close = after[open..].find('<')?;
    Some(after[open..open + close].trim())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_shows_a_component_come_and_go_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bridgehead.toml"), ephemeral_config("")).unwrap();
    let node = Node::start(dir.path()).await;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/", node.addr("admin"));
    let render = || chromium(profile.path(), &url, &["--dump-dom"]);

    let dom = render();
    assert!(
        dom.contains("data-loaded=\"yes\""),
        "the page loaded its data: {dom}"
    );
    assert!(
        dom.contains("data-status=\"green\""),
        "the development certificate is green: {dom}"
    );
    assert_eq!(text_of(&dom, "count-components"), Some("0"), "{dom}");
    assert!(
        dom.contains("component — 127.0.0.1:"),
        "the listeners are listed: {dom}"
    );

    let (_, secret) = node.demo();
    let bridge = component::connect(
        node.addr("component"),
        &node.ca(),
        "bridge.localhost",
        &secret,
    )
    .await
    .expect("the bridge connects");
    let dom = render();
    assert_eq!(text_of(&dom, "count-components"), Some("1"), "{dom}");
    assert!(
        dom.contains("<td>bridge.localhost</td>"),
        "the component is listed: {dom}"
    );

    // A screenshot for the README (kept under docs/ by hand; the test writes target/).
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        profile.path(),
        &url,
        &[&format!("--screenshot={}", shot.display())],
    );
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "a screenshot"
    );

    drop(bridge);
    let mut last = String::new();
    let gone = wait_until(Duration::from_secs(30), || {
        last = render();
        text_of(&last, "count-components") == Some("0")
    })
    .await;
    assert!(gone, "the page shows the component gone: {last}");
    assert!(!last.contains("<td>bridge.localhost</td>"), "{last}");
}
