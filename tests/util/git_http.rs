//! A real smart-HTTP Git server on 127.0.0.1: lighttpd (Debian package
//! `lighttpd`) running `git http-backend` as a CGI, over a directory of
//! bare repositories. Tests stop it and start it again on the same port to
//! play a backup host that goes down.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LIGHTTPD: &str = "/usr/sbin/lighttpd";
const HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";

/// lighttpd serving `<root>/<name>.git` at `/git/<name>.git`, pushes
/// allowed where the repository sets `http.receivepack`.
pub struct GitHttpServer {
    port: u16,
    config: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl GitHttpServer {
    /// Starts it on a free port; panics (never skips) when lighttpd or
    /// git-http-backend is missing.
    pub fn start(root: &Path) -> Self {
        for tool in [LIGHTTPD, HTTP_BACKEND] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: install the Debian packages lighttpd and git (.ci/run does)"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let root = root.canonicalize().expect("root");
        let config = dir.path().join("lighttpd.conf");
        let text = format!(
            r#"server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.modules = ("mod_alias", "mod_cgi", "mod_setenv")
server.errorlog = "{log}"
alias.url = ("/git/" => "{HTTP_BACKEND}/")
$HTTP["url"] =~ "^/git/" {{
  cgi.assign = ("" => "")
  setenv.add-environment = ("GIT_PROJECT_ROOT" => "{root}", "GIT_HTTP_EXPORT_ALL" => "1")
}}
"#,
            root = root.display(),
            log = dir.path().join("error.log").display(),
        );
        std::fs::write(&config, text).expect("lighttpd config");
        let mut server = Self {
            port,
            config,
            child: None,
            _dir: dir,
        };
        server.start_again();
        server
    }

    /// The URL of repository `name` (e.g. `world.git`).
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/git/{name}", self.port)
    }

    /// Stops the server (SIGTERM, then waits); the port stays reserved for
    /// [`Self::start_again`] only by convention.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on its port and waits until it accepts.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "lighttpd is already running");
        let child = Command::new(LIGHTTPD)
            .arg("-D")
            .arg("-f")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting lighttpd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("lighttpd exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "lighttpd did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
