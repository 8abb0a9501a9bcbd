//! A `judged serve` for the daemon's tests (`serve.rs`, `serve_postgres.rs`): started on a
//! config, spoken to over HTTP, killed when dropped; and the problems they judge.

// Each test binary uses its part.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A running `judged serve`; killed when dropped.
pub struct Server {
    child: Child,
    base: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    pub fn start(config: &Path) -> Server {
        Server::start_with(config, &[])
    }

    /// With more `judged serve` options (e.g. `--listen`).
    pub fn start_with(config: &Path, options: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_judged"))
            .args(["serve", "--config"])
            .arg(config)
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (address_sender, address) = mpsc::channel();
        {
            let stderr = stderr.clone();
            let pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    // Logged first: the log holds the line when `start` returns.
                    {
                        let mut all = stderr.lock().unwrap();
                        all.push_str(&line);
                        all.push('\n');
                    }
                    if let Some((_, rest)) = line.split_once("listening on http://") {
                        let address = rest.split_whitespace().next().unwrap_or("").to_owned();
                        let _ = address_sender.send(address);
                    }
                }
            });
        }
        let address = match address.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!("judged serve did not start:\n{}", stderr.lock().unwrap());
            }
        };
        Server {
            child,
            base: format!("http://{address}"),
            stderr,
        }
    }

    /// The daemon's process id.
    #[allow(dead_code)] // not every test binary needs it
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Whether the log comes to hold `text` within 10 s: a line the daemon prints right
    /// before it answers a request can reach the log after the answer reaches the test.
    #[allow(dead_code)] // not every test binary needs it
    pub fn log_shows(&self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(text) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// The log as it grows, for reading it after the server is gone.
    pub fn log_handle(&self) -> Arc<Mutex<String>> {
        self.stderr.clone()
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, None, b"")
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.request("POST", path, None, body.as_bytes())
    }

    /// `GET /problems`: (id, origin, test cases) of each.
    pub fn problems(&self) -> Vec<(String, String, u64)> {
        let (status, reply) = self.get("/problems");
        assert_eq!(status, 200, "{reply}");
        reply["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().unwrap().to_owned(),
                    p["origin"].as_str().unwrap().to_owned(),
                    p["test_cases"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// `PUT /problems/ID` of a zip archive.
    pub fn upload(&self, id: &str, archive: &[u8], token: Option<&str>) -> (u16, Value) {
        self.request("PUT", &format!("/problems/{id}"), token, archive)
    }

    /// Any request, with a bearer token when given.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> (u16, Value) {
        let mut request = ureq::request(method, &self.url(path));
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let content_type = if path.starts_with("/problems/") {
            "application/zip"
        } else {
            "application/json"
        };
        response(request.set("Content-Type", content_type).send_bytes(body))
    }

    pub fn submit(&self, body: Value) -> i64 {
        let (status, reply) = self.post("/judgings", &body.to_string());
        assert_eq!(status, 201, "{reply}\n{}", self.log());
        reply["id"].as_i64().unwrap()
    }

    pub fn judging(&self, id: i64) -> Value {
        let (status, reply) = self.get(&format!("/judgings/{id}"));
        assert_eq!(status, 200, "{reply}");
        reply
    }

    /// Poll until `done(judging)`, for at most `seconds`.
    pub fn wait_for(&self, id: i64, seconds: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let judging = self.judging(id);
            if done(&judging) {
                return judging;
            }
            assert!(
                Instant::now() < deadline,
                "judging {id} still {judging}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_final(&self, id: i64) -> Value {
        self.wait_for(id, 120, |j| {
            ["done", "cancelled", "failed"].contains(&j["status"].as_str().unwrap_or(""))
        })
    }

    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM; the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn response(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("HTTP request failed: {error}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

type ZipWriter = zip::ZipWriter<std::io::Cursor<Vec<u8>>>;

/// One entry of a hand-made archive.
pub enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

/// A zip of the files below `base` (when given, their paths relative to it), then `entries`.
pub fn zip_of(base: Option<&Path>, entries: &[Entry]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    if let Some(dir) = base {
        add_dir(&mut zip, dir, dir);
    }
    let options = zip::write::SimpleFileOptions::default();
    for entry in entries {
        match entry {
            Entry::File(name, content) => {
                zip.start_file(*name, options).unwrap();
                zip.write_all(content).unwrap();
            }
            Entry::Symlink(name, target) => zip.add_symlink(*name, *target, options).unwrap(),
        }
    }
    zip.finish().unwrap().into_inner()
}

/// A zip of the files below `dir`, as a problem archive.
pub fn zip_dir(dir: &Path) -> Vec<u8> {
    zip_of(Some(dir), &[])
}

fn add_dir(zip: &mut ZipWriter, root: &Path, dir: &Path) {
    use std::io::Write;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            add_dir(zip, root, &path);
        } else {
            let name = path.strip_prefix(root).unwrap().to_str().unwrap();
            zip.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(&std::fs::read(&path).unwrap()).unwrap();
        }
    }
}

/// A copy of A+B with `cases` secret test cases, and a C submission that sleeps `sleep_ms`
/// per test case before answering.
pub fn slow_problem(root: &Path, cases: usize) -> PathBuf {
    let dir = root.join("slowsum");
    std::fs::create_dir_all(dir.join("data/secret")).unwrap();
    std::fs::write(
        dir.join("problem.yaml"),
        "name: Slow sum\nlimits:\n  time_limit: 2.0\n  memory: 256\n",
    )
    .unwrap();
    for i in 0..cases {
        std::fs::write(
            dir.join(format!("data/secret/{i:02}.in")),
            format!("{i} 1\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("data/secret/{i:02}.ans")),
            format!("{}\n", i + 1),
        )
        .unwrap();
    }
    // Reachable by the run user (tempdir is 0700).
    for path in [root, &dir] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

pub fn slow_submission(sleep_ms: u64) -> Value {
    let source = format!(
        "#include <stdio.h>\n#include <time.h>\nint main(void) {{\n    long long a, b;\n    \
         struct timespec t = {{ 0, {} }};\n    nanosleep(&t, 0);\n    \
         if (scanf(\"%lld %lld\", &a, &b) != 2) return 1;\n    printf(\"%lld\\n\", a + b);\n    \
         return 0;\n}}\n",
        sleep_ms * 1_000_000
    );
    json!({ "problem": "slowsum", "files": [{ "name": "slow.c", "content": source }] })
}
