//! A headless Chromium driven over the DevTools protocol, for the tests of the web port's pages
//! (the candle page, the dashboard): launched on a free DevTools port, one page target, commands
//! sent and their results awaited, screenshots saved. Chromium is required: a test that launches
//! it fails when it is missing. (Not in `common/mod.rs`: the client crate's tests share that and
//! have no DevTools client; a test that drives a browser includes this file with `#[path]`.)
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A headless Chromium and its page's DevTools connection.
pub struct Browser {
    child: Child,
    ws: tungstenite::WebSocket<TcpStream>,
    next: u64,
    events: Vec<Value>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    pub fn launch(profile: &Path) -> Browser {
        let found = Command::new("sh").args(["-c", "command -v chromium"]).output().expect("sh");
        assert!(
            found.status.success(),
            "chromium is missing: install it (scripts/lib.sh's VIGIL_PACKAGES has it)"
        );
        let mut child = Command::new("chromium")
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
            .args(["--remote-debugging-port=0", "--window-size=1100,1400", "--force-device-scale-factor=1"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting chromium");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut port = None;
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(rest) = line.split("DevTools listening on ws://127.0.0.1:").nth(1) {
                port = rest.split('/').next().and_then(|p| p.trim().parse::<u16>().ok());
                break;
            }
            line.clear();
        }
        let port = port.expect("chromium said where DevTools listens");
        // The rest of its log is drained, so that a full pipe never stalls it.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let targets: Value = serde_json::from_str(&http_get(port, "/json/list")).unwrap_or(Value::Null);
            let page = targets.as_array().and_then(|t| {
                t.iter().find(|t| t["type"] == "page").and_then(|t| t["webSocketDebuggerUrl"].as_str())
            });
            if let Some(url) = page {
                break url.to_string();
            }
            assert!(Instant::now() < deadline, "chromium has no page target");
            std::thread::sleep(Duration::from_millis(100));
        };
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("DevTools WebSocket");
        Browser { child, ws, next: 1, events: Vec::new() }
    }

    /// Sends a DevTools command and waits for its result (events that come first are kept).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(tungstenite::Message::Text(msg)).unwrap();
        loop {
            let v = self.read();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    fn read(&mut self) -> Value {
        match self.ws.read().expect("a DevTools message") {
            tungstenite::Message::Text(t) => serde_json::from_str(&t).unwrap(),
            other => panic!("unexpected DevTools message {other:?}"),
        }
    }

    /// Waits for the page's load event (kept or still to come).
    pub fn loaded(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(at) = self.events.iter().position(|e| e["method"] == "Page.loadEventFired") {
                self.events.drain(..=at);
                return;
            }
            assert!(Instant::now() < deadline, "the page did not load");
            let v = self.read();
            self.events.push(v);
        }
    }

    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.loaded();
    }

    pub fn node(&mut self, selector: &str) -> Value {
        let root = self.call("DOM.getDocument", json!({"depth": 0}))["root"]["nodeId"].clone();
        let node =
            self.call("DOM.querySelector", json!({"nodeId": root, "selector": selector}))["nodeId"].clone();
        assert_ne!(node, 0, "no {selector} on the page");
        node
    }

    /// Sets a field's value as a reader would have typed it.
    pub fn fill(&mut self, selector: &str, value: &str) {
        let node = self.node(selector);
        if selector == "#pedido" {
            self.call("DOM.focus", json!({"nodeId": node}));
            self.call("Input.insertText", json!({"text": value}));
        } else {
            self.call("DOM.setAttributeValue", json!({"nodeId": node, "name": "value", "value": value}));
        }
    }

    /// Clicks the centre of an element with the mouse, and waits for the page that follows.
    pub fn click(&mut self, selector: &str) {
        let node = self.node(selector);
        self.call("DOM.scrollIntoViewIfNeeded", json!({"nodeId": node}));
        let quad = self.call("DOM.getContentQuads", json!({"nodeId": node}))["quads"][0].clone();
        let xs: Vec<f64> = (0..4).map(|i| quad[2 * i].as_f64().unwrap()).collect();
        let ys: Vec<f64> = (0..4).map(|i| quad[2 * i + 1].as_f64().unwrap()).collect();
        let (x, y) = (xs.iter().sum::<f64>() / 4.0, ys.iter().sum::<f64>() / 4.0);
        for kind in ["mousePressed", "mouseReleased"] {
            let e = json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1});
            self.call("Input.dispatchMouseEvent", e);
        }
        self.loaded();
    }

    /// The value of a JavaScript expression in the page (`Runtime.evaluate`; DevTools runs it
    /// even where the page's own scripts are disabled).
    pub fn eval(&mut self, expression: &str) -> Value {
        self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true}))["result"]
            ["value"]
            .clone()
    }

    pub fn html(&mut self) -> String {
        let root = self.call("DOM.getDocument", json!({"depth": 0}))["root"]["nodeId"].clone();
        self.call("DOM.getOuterHTML", json!({"nodeId": root}))["outerHTML"].as_str().unwrap().to_string()
    }

    /// A screenshot of the whole page, saved as `path`; its pixels and bytes per pixel.
    pub fn screenshot(&mut self, path: &Path) -> (Vec<u8>, usize) {
        let shot =
            self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}));
        use base64::Engine as _;
        let png_bytes =
            base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::write(path, &png_bytes).unwrap();
        eprintln!("screenshot: {}", path.display());
        let decoder = png::Decoder::new(&png_bytes[..]);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let stride = match info.color_type {
            png::ColorType::Rgba => 4,
            png::ColorType::Rgb => 3,
            other => panic!("a screenshot in {other:?}"),
        };
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        (buf, stride)
    }
}

/// GET over plain HTTP (DevTools' target list): the body, read to its `Content-Length` (the
/// server keeps the connection open).
pub fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut length = 0usize;
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        line.clear();
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).unwrap();
    String::from_utf8_lossy(&body).to_string()
}

/// Where a test keeps its screenshots: `target/tmp/<test>/`.
pub fn output_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(test);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
