//! Benchmark: how long `add service` takes on a five-service repository, by phase.
//!
//! Each run generates a fresh repository with five services (REST, gRPC, GraphQL,
//! WebSocket, SSE), Redis events and the gateway, commits a local edit to the README
//! and to compose (so the merge has real three-way work), then adds a sixth service of
//! another protocol. The phases are timed through the library, in process:
//! `prepare` (find the repository, check it is clean, read the answers, read the base
//! render from the pristine branch, render the new answers, read the committed files,
//! merge) and `apply` (commit the render, write the working tree, update the index,
//! commit the merge); render and merge are also timed alone. The real binary is timed
//! end to end on a copy of the same repository, and `git merge` of the same render
//! commit in another copy is the floor: git doing the merge by itself.
//!
//! Run with `cargo bench --bench add`. Prints medians; asserts nothing, as machines are
//! shared and noisy.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use new_service::answers::{PartialAnswers, PartialMessaging, Service};
use new_service::blueprint::Source;
use new_service::merge::{self, Labels};
use new_service::tree::{FileTree, TreeFile};
use new_service::update::{self, Change, UpdateOptions};
use new_service::{NewOptions, render};

const RUNS: usize = 15;
const SERVICES: [(&str, &str); 5] = [
    ("catalog", "rest"),
    ("ledger", "grpc"),
    ("reviews", "graphql"),
    ("chat", "websocket"),
    ("feed", "sse"),
];

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("spawn git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:>8.2} ms", d.as_secs_f64() * 1000.0)
}

/// A five-service repository with committed local edits in `dir`.
fn repository(source: &Source, dir: &Path) {
    let blueprint = source.blueprint(None).expect("default blueprint");
    let answers = PartialAnswers {
        name: Some("bench".into()),
        services: Some(
            SERVICES
                .iter()
                .map(|(name, protocol)| Service {
                    name: (*name).into(),
                    protocol: (*protocol).into(),
                })
                .collect(),
        ),
        messaging: PartialMessaging {
            broker: Some("redis".into()),
        },
        ..Default::default()
    }
    .resolve(blueprint, true)
    .expect("valid answers");
    let options = NewOptions {
        target: dir.to_owned(),
        git: true,
        hooks: false,
    };
    new_service::generate(source, blueprint, &answers, &options, &mut |_| {}).expect("new");
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README");
    std::fs::write(
        dir.join("README.md"),
        readme + "\n## Team notes\n\nLocal.\n",
    )
    .expect("edit");
    let compose = std::fs::read_to_string(dir.join("deploy/compose.yaml")).expect("compose");
    let compose = compose.replacen(
        "      OTEL_SERVICE_NAME: catalog\n",
        "      OTEL_SERVICE_NAME: catalog\n      CATALOG_PAGE_SIZE: \"25\"\n",
        1,
    );
    std::fs::write(dir.join("deploy/compose.yaml"), compose).expect("edit");
    git(dir, &["commit", "-q", "-am", "Local edits"]);
}

fn add_orders() -> Change {
    Change::AddService {
        name: "orders".into(),
        protocol: Some("grpc".into()),
    }
}

fn main() {
    let work = tempfile::tempdir().expect("temp dir");
    let source = Source::builtin().expect("built-in blueprints");
    let blueprint = source.blueprint(None).expect("default blueprint");

    let (mut prepare, mut apply, mut total, mut render_alone, mut merge_alone) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut binary, mut floor) = (vec![], vec![]);
    let mut sizes = (0, 0, 0);
    for i in 0..RUNS {
        let dir = work.path().join(format!("lib-{i}"));
        repository(&source, &dir);
        // Identical copies, for the binary and for the floor.
        let bin_dir = work.path().join(format!("bin-{i}"));
        let floor_dir = work.path().join(format!("floor-{i}"));
        for copy in [&bin_dir, &floor_dir] {
            let status = Command::new("cp").arg("-a").arg(&dir).arg(copy).status();
            assert!(status.expect("spawn cp").success());
        }
        let options = UpdateOptions {
            start: dir.clone(),
            source: &source,
            change: add_orders(),
            hooks: true,
            check_only: false,
        };
        let (prepared, t_prepare) = timed(|| update::prepare(&options).expect("prepare"));
        let answers = prepared.answers().clone();
        let plan = prepared.plan().clone();
        sizes = (
            plan.files.len(),
            plan.changes().count(),
            plan.count(merge::Outcome::Merged),
        );
        let (applied, t_apply) =
            timed(|| prepared.apply(true, &|| false, &mut |_| {}).expect("apply"));
        assert!(applied.commit.is_some(), "committed");
        prepare.push(t_prepare);
        apply.push(t_apply);
        total.push(t_prepare + t_apply);

        // Render and merge alone, on the same inputs.
        let (theirs, t_render) = timed(|| render::render(blueprint, &answers).expect("render"));
        render_alone.push(t_render);
        let side = |pick: fn(&merge::FileMerge) -> Option<&TreeFile>| {
            let mut tree = FileTree::new();
            for file in &plan.files {
                if let Some(version) = pick(file) {
                    tree.insert(file.path.clone(), version.clone())
                        .expect("clean path");
                }
            }
            tree
        };
        let base = side(|f| f.base.as_ref());
        let ours = side(|f| f.ours.as_ref());
        let labels = Labels {
            ours: "HEAD",
            theirs: "bench",
        };
        let (_, t_merge) =
            timed(|| merge::three_way(&base, &ours, &theirs, labels).expect("merge"));
        merge_alone.push(t_merge);

        // The binary, end to end, on a copy of the same repository.
        let (_, t_binary) = timed(|| {
            let out = Command::new(env!("CARGO_BIN_EXE_new-service"))
                .args(["add", "service", "orders", "--protocol", "grpc"])
                .current_dir(&bin_dir)
                .output()
                .expect("spawn");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        });
        binary.push(t_binary);

        // Floor: git merging the very same render commit by itself, in another copy.
        assert!(applied.render.is_some(), "a render commit");
        let from = dir.to_str().expect("UTF-8");
        git(&floor_dir, &["fetch", "-q", from, "new-service/pristine"]);
        let (_, t_floor) = timed(|| git(&floor_dir, &["merge", "-q", "--no-edit", "FETCH_HEAD"]));
        floor.push(t_floor);
    }

    println!(
        "add service orders (grpc) to five services + gateway + Redis events, with local edits: \
         {} rendered paths, {} changed, {} merged three ways; median of {RUNS} runs",
        sizes.0, sizes.1, sizes.2
    );
    println!("  prepare (read, render, merge)   {}", ms(median(prepare)));
    println!(
        "    of which render alone         {}",
        ms(median(render_alone))
    );
    println!(
        "    of which merge alone          {}",
        ms(median(merge_alone))
    );
    println!("  apply (write, index, commit)    {}", ms(median(apply)));
    println!("  library total                   {}", ms(median(total)));
    println!("  binary end to end               {}", ms(median(binary)));
    println!("  floor: git merge of the render  {}", ms(median(floor)));
}
