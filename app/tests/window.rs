//! The real `prism` binary in a real window, under Xvfb: it shows the photo (the screenshot is not
//! blank), and after a kill the next start offers the autosaved document. CI sets
//! `PRISM_REQUIRE_DISPLAY_TESTS=1`, so a missing Xvfb fails there instead of skipping.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn start_prism(display: &str, config: &Path, image: Option<&Path>) -> Killed {
    let mut command = Command::new(env!("CARGO_BIN_EXE_prism"));
    command
        .env("DISPLAY", display)
        .env("PRISM_CONFIG", config)
        .env("PRISM_HOME", config.join("home"))
        .env("PRISM_LOG", "prism=info")
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(image) = image {
        command.arg(image);
    }
    Killed(command.spawn().expect("start prism"))
}

/// Spread of the screenshot's brightness, and the number of distinct colours in it.
fn screenshot(display: &str, path: &Path) -> Option<(f64, usize)> {
    let status =
        Command::new("import").args(["-display", display, "-window", "root"]).arg(path).stderr(Stdio::null()).status().ok()?;
    if !status.success() {
        return None;
    }
    let image = image::open(path).ok()?.to_rgb8();
    let luma: Vec<f64> =
        image.pixels().map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])).collect();
    let mean = luma.iter().sum::<f64>() / luma.len() as f64;
    let spread = (luma.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / luma.len() as f64).sqrt();
    let colours: std::collections::HashSet<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    Some((spread, colours.len()))
}

#[test]
fn the_window_shows_the_photo_and_a_killed_session_is_offered_back() {
    if !on_path("Xvfb") || !on_path("import") {
        assert!(
            std::env::var_os("PRISM_REQUIRE_DISPLAY_TESTS").is_none(),
            "Xvfb and ImageMagick's import are required here (apt-get install xvfb imagemagick)"
        );
        eprintln!("skipped: no Xvfb or ImageMagick import on this machine");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let display = format!(":{}", 90 + std::process::id() % 500);
    let _xvfb = Killed(
        Command::new("Xvfb")
            .args([display.as_str(), "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb"),
    );
    std::thread::sleep(Duration::from_millis(800));
    let config = dir.path().join("config");
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/samples/coffee.jpg");

    let mut prism = start_prism(&display, &config, Some(&photo));
    let shot: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("prism-window.png");
    let deadline = Instant::now() + Duration::from_secs(90);
    let (spread, colours) = loop {
        std::thread::sleep(Duration::from_millis(500));
        if let Some((spread, colours)) = screenshot(&display, &shot)
            && colours > 5000
        {
            break (spread, colours);
        }
        assert!(prism.0.try_wait().ok().flatten().is_none(), "prism exited early");
        assert!(Instant::now() < deadline, "the window never showed the photo");
    };
    assert!(spread > 20.0, "the screenshot is nearly uniform (spread {spread:.1})");
    eprintln!("screenshot {}: brightness spread {spread:.1}, {colours} colours", shot.display());

    // The document was autosaved on open; kill -9 leaves it behind.
    let manifest = config.join("autosave").join("document.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !manifest.exists() {
        assert!(Instant::now() < deadline, "no autosave was written");
        std::thread::sleep(Duration::from_millis(100));
    }
    prism.0.kill().expect("kill prism");
    let _ = prism.0.wait();

    let mut restarted = start_prism(&display, &config, None);
    let mut stderr = restarted.0.stderr.take().expect("stderr");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut log = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            log.extend_from_slice(&chunk[..n]);
            if String::from_utf8_lossy(&log).contains("offering the autosaved document") {
                let _ = sender.send(String::from_utf8_lossy(&log).into_owned());
                break;
            }
        }
    });
    let log = receiver.recv_timeout(Duration::from_secs(60)).expect("the restarted editor offers the autosaved document");
    assert!(log.contains("coffee.jpg"), "{log}");
}
