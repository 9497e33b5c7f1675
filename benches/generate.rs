//! Benchmark: how long `new` takes for a five-service system, next to the floor of
//! copying the very same tree with `cp -r` and committing it with the git command line.
//!
//! Run with `cargo bench --bench generate`. Prints medians over interleaved runs; the
//! goal is a ratio within 1.2x of the floor (rendering must cost next to nothing).
//! Benchmarks print figures; they assert nothing, as machines are shared and noisy.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use new_service::answers::{PartialAnswers, Service};
use new_service::blueprint::Source;

const RUNS: usize = 25;
const SERVICES: [&str; 5] = ["catalog", "orders", "users", "payments", "shipping"];

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn new_service(dest: &Path, git: bool) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_new-service"));
    cmd.args(["new", "bench", "--yes", "--no-hooks", "--output"])
        .arg(dest);
    for s in SERVICES {
        cmd.args(["--service", &format!("{s}:rest")]);
    }
    if !git {
        cmd.arg("--no-git");
    }
    run(&mut cmd);
}

fn copy_floor(reference: &Path, dest: &Path, git: bool) {
    run(Command::new("cp").arg("-r").arg(reference).arg(dest));
    if git {
        run(Command::new("git")
            .args(["init", "-q", "-b", "main"])
            .current_dir(dest));
        run(Command::new("git").args(["add", "-A"]).current_dir(dest));
        run(Command::new("git")
            .args([
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@localhost",
                "commit",
                "-q",
                "-m",
                "floor",
            ])
            .current_dir(dest));
    }
}

fn main() {
    let work = tempfile::tempdir().expect("temp dir");
    let reference = work.path().join("reference");
    new_service(&reference, false);

    let source = Source::builtin().expect("built-in blueprints");
    let blueprint = source.blueprint(None).expect("default blueprint");
    let answers = PartialAnswers {
        name: Some("bench".into()),
        services: Some(
            SERVICES
                .iter()
                .map(|s| Service {
                    name: (*s).into(),
                    protocol: "rest".into(),
                })
                .collect(),
        ),
        ..Default::default()
    }
    .resolve(blueprint, true)
    .expect("valid answers");
    let tree = new_service::render::render(blueprint, &answers).expect("renders");

    let (mut render, mut ours, mut floor, mut ours_git, mut floor_git) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..RUNS {
        render.push(timed(|| {
            new_service::render::render(blueprint, &answers).expect("renders");
        }));
        let dir = |name: &str| work.path().join(format!("{name}-{i}"));
        ours.push(timed(|| new_service(&dir("ours"), false)));
        floor.push(timed(|| copy_floor(&reference, &dir("floor"), false)));
        ours_git.push(timed(|| new_service(&dir("ours-git"), true)));
        floor_git.push(timed(|| copy_floor(&reference, &dir("floor-git"), true)));
    }

    let (ours, floor, ours_git, floor_git) = (
        median(ours),
        median(floor),
        median(ours_git),
        median(floor_git),
    );
    println!(
        "five REST services and the gateway: {} files, {} bytes; median of {RUNS} interleaved runs",
        tree.len(),
        tree.total_bytes()
    );
    println!(
        "  render only, in process            {}",
        ms(median(render))
    );
    println!(
        "  new --no-git            {:>10}   floor cp -r                    {:>10}   ratio {:.2}x",
        ms(ours),
        ms(floor),
        ours.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "  new (with git commit)   {:>10}   floor cp -r + git init/add/commit {:>7}   ratio {:.2}x",
        ms(ours_git),
        ms(floor_git),
        ours_git.as_secs_f64() / floor_git.as_secs_f64()
    );
}
